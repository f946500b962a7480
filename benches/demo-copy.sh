#!/usr/bin/env bash
# Copying the real demo closure (issue 13; not a test, run as root): the db
# class's closure (PostgreSQL, Python and their Debian packages) to 4 fresh
# lab hosts with `ferry copy`, against the floor of the same files sent with
# `tar -c | ssh host 'tar -x && sync'` to the same 4 hosts in parallel, in one
# run. Both sides write to a fresh journaled ext4 (benches/fresh-fs.sh says
# why) and make what they wrote durable: ferry fsyncs every object it
# registers, the floor syncs its file system once at the end.
#
#   cargo build --release && bash benches/demo-copy.sh
#   FERRY=path/to/ferry  HOSTS=4  ROUNDS=3  CLASS=db  (environment overrides)
#
# Prints both times and the ratio ferry / floor (goal <= 1.2).
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")/.." && pwd)
FERRY=${FERRY:-$here/target/release/ferry}
HOSTS=${HOSTS:-4}
ROUNDS=${ROUNDS:-3}
CLASS=${CLASS:-db}
SUBNET=${SUBNET:-10.237.201}
SITE=bench-demo-copy

[ "$(id -u)" = 0 ] || { echo "run as root (the lab needs namespaces)" >&2; exit 2; }
[ -x "$FERRY" ] || { echo "no ferry binary at $FERRY (cargo build --release)" >&2; exit 2; }
ferry() { "$FERRY" "$@"; }
now() { date +%s.%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
least() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
# This VM drops file pages unused for a few seconds; each run starts with the
# deployer's side of the closure read once, as on a deployer that has just built.
warm() { find "$@" -type f -print0 | xargs -0 cat > /dev/null; }

echo "== the demo, locked and built into the deployer's store"
ferry lock "$here/sites/demo" > /dev/null
ferry build "$here/sites/demo" > /dev/null
mapfile -t paths < <(ferry closure "$here/sites/demo" --requisites --json |
  python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)["classes"][sys.argv[1]]["paths"]))' "$CLASS")
bytes=$(du -sb --apparent-size "${paths[@]}" | awk '{ s += $1 } END { print s }')
echo "   class $CLASS: ${#paths[@]} store paths, $(ratio "$bytes" 1048576) MiB"

# shellcheck source=benches/fresh-fs.sh
. "$here/benches/fresh-fs.sh"
fresh_fs_mount
work=$(mktemp -d "$FRESH_FS_MOUNT/ferry-bench.XXXXXX")
mkdir -p /run/ferry-lab "$FRESH_FS_MOUNT/lab"
rm -rf "/run/ferry-lab/$SITE"
ln -s "$FRESH_FS_MOUNT/lab" "/run/ferry-lab/$SITE"
{
  echo "site = \"$SITE\""
  echo 'class bench { }'
  echo 'inventory = lab {'
  echo "  subnet = \"$SUBNET.0/24\""
  echo '  hosts = ['
  for i in $(seq 1 "$HOSTS"); do echo "    { name = \"h$i\", class = bench },"; done
  echo '  ]'
  echo '}'
} > "$work/site.conf"
cleanup() {
  ferry lab down "$work" > /dev/null 2>&1 || true
  rm -f "/run/ferry-lab/$SITE"
  fresh_fs_unmount
}
trap cleanup EXIT
ferry lab up "$work" > /dev/null
cfg=/run/ferry-lab/$SITE/ssh_config
hosts=(); for i in $(seq 1 "$HOSTS"); do hosts+=("h$i"); done
store=$(dirname "${paths[0]}")

# What each host sees at /ferry, seen from here.
private() { echo "/run/ferry-lab/$SITE/hosts/$1/private/ferry"; }
# An empty store on every host, with the agent bootstrapped again (untimed).
reset_hosts() {
  for h in "${hosts[@]}"; do rm -rf "$(private "$h")"/{store,var,floor}; done
  echo warm > "$work/warm"
  ferry copy --json --ssh-config "$cfg" --max-parallel "$HOSTS" --to "$(IFS=,; echo "${hosts[*]}")" -- \
    "$(ferry store add "$work/warm")" > /dev/null
}

names=(); for p in "${paths[@]}"; do names+=("$(basename "$p")"); done
t_ferry=; t_floor=
for round in $(seq 1 "$ROUNDS"); do
  reset_hosts
  warm "${paths[@]}"
  t0=$(now)
  ferry copy --json --ssh-config "$cfg" --max-parallel "$HOSTS" --to "$(IFS=,; echo "${hosts[*]}")" -- "${paths[@]}" > "$work/ferry.json"
  t=$(echo "$(now) - $t0" | bc)
  ok=$(grep -c '"ok": true' "$work/ferry.json" || true)
  [ "$ok" = "$HOSTS" ] || { cat "$work/ferry.json"; echo "ferry copy failed on some hosts" >&2; exit 1; }
  t_ferry=$(least "$t_ferry" "$t")

  warm "${paths[@]}"
  t0=$(now)
  for h in "${hosts[@]}"; do
    tar -C "$store" -cf - "${names[@]}" |
      ssh -F "$cfg" "$h" 'mkdir -p /ferry/floor && tar -C /ferry/floor -xf - && sync -f /ferry/floor' &
  done
  wait
  tf=$(echo "$(now) - $t0" | bc)
  t_floor=$(least "$t_floor" "$tf")
  echo "   round $round: ferry copy $(ratio "$t" 1) s, tar | ssh tar + sync $(ratio "$tf" 1) s"
done
# Both sides put the same bytes on every host.
for h in "${hosts[@]}"; do
  a=$(du -sb --apparent-size "$(private "$h")/floor" | cut -f1)
  [ "$a" -gt 0 ] || { echo "the floor wrote nothing on $h" >&2; exit 1; }
done
echo "closure of class $CLASS ($(ratio "$bytes" 1048576) MiB, ${#paths[@]} paths) to $HOSTS fresh hosts (best of $ROUNDS):"
echo "   ferry copy:                $(ratio "$t_ferry" 1) s"
echo "   tar | ssh tar -x + sync:   $(ratio "$t_floor" 1) s"
echo "   ratio ferry / floor: $(ratio "$t_ferry" "$t_floor") (goal <= 1.2)"
