#!/usr/bin/env bash
# Copy benchmark (not a test; run as root on a machine with the lab's needs
# plus Debian's `nix-bin`). Prints ratios against peers measured in the same run:
#   (a) a closure of N small paths to a fresh lab host: ferry vs `nix copy --to ssh://`
#   (b) one 1 GiB object: ferry vs raw `ssh host 'cat > /dev/null' < file`
#   (c) the closure of (a) to 20 fresh hosts with --max-parallel 10 vs to one host
#
# Usage: cargo build --release && sudo benches/copy.sh
#   FERRY=path/to/ferry  N=10000  BIG_MIB=1024  HOSTS=20  ROUNDS=3  (environment overrides)
#   PARTS=abc: which parts run (e.g. PARTS=b for the big object alone; (c) needs (a))
# Every lab host has its own private /ferry-like root and its own /nix, so each
# side starts from an empty store. The agent is bootstrapped on every host
# (untimed) before the timed runs, as Nix is preinstalled on the hosts.
#
# BENCH_FS=fresh (the default) puts the lab hosts' stores (ferry's and Nix's)
# and the deployer's work dir on a freshly made, journaled ext4 file system
# (benches/fresh-fs.sh says why); BENCH_FS=here uses this machine's root fs.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
FERRY=${FERRY:-$here/target/release/ferry}
N=${N:-10000}
BIG_MIB=${BIG_MIB:-1024}
HOSTS=${HOSTS:-20}
SUBNET=${SUBNET:-10.237.200}
PARTS=${PARTS:-abc}
ROUNDS=${ROUNDS:-3}
part() { [[ $PARTS == *"$1"* ]]; }
if part c && ! part a; then echo "part (c) compares against (a): PARTS must include a" >&2; exit 2; fi
if ! part c; then HOSTS=0; fi

[ "$(id -u)" = 0 ] || { echo "run as root (the lab needs namespaces)" >&2; exit 2; }
[ -x "$FERRY" ] || { echo "no ferry binary at $FERRY (cargo build --release)" >&2; exit 2; }
! part a || command -v nix-store >/dev/null || { echo "install nix-bin (apt-get install nix-bin)" >&2; exit 2; }

BENCH_FS=${BENCH_FS:-fresh}
# shellcheck source=benches/fresh-fs.sh
. "$here/benches/fresh-fs.sh"
if [ "$BENCH_FS" = fresh ]; then
  fresh_fs_mount
  fs_mount=$FRESH_FS_MOUNT
  work=$(mktemp -d "$fs_mount/ferry-bench.XXXXXX")
  # The lab lives under /run/ferry-lab/<site>: point that at the fresh file system.
  mkdir -p /run/ferry-lab "$fs_mount/lab"
  rm -rf /run/ferry-lab/bench-copy
  ln -s "$fs_mount/lab" /run/ferry-lab/bench-copy
else
  work=$(mktemp -d /tmp/ferry-bench.XXXXXX)
fi
root=$work/ferry
mkdir -p "$root" "$work/nix-local" "$work/files"
ferry() { "$FERRY" --store-dir "$root/store" --state-dir "$root/var" "$@"; }
now() { date +%s.%N; }
# This VM pages out file pages that went unused for a few seconds (DAMON's proactive
# reclaim, kdamond), so a store written a minute ago is read back from disk. Each timed run
# starts with its deployer-side store read once, as on a deployer that has just built.
warm() { find "$@" -type f -print0 | xargs -0 cat > /dev/null; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# The smaller of two times (the first may be empty).
least() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }

# The lab: a0 (closure, ferry and nix), b0 (big object), c1..cHOSTS.
{
  echo 'site = "bench-copy"'
  echo 'class bench { }'
  echo 'inventory = lab {'
  echo "  subnet = \"$SUBNET.0/24\""
  echo '  hosts = ['
  echo '    { name = "a0", class = bench, labels = { } },'
  echo '    { name = "b0", class = bench, labels = { } },'
  for i in $(seq 1 "$HOSTS"); do echo "    { name = \"c$i\", class = bench, labels = { } },"; done
  echo '  ]'
  echo '}'
} > "$work/site.conf"
cleanup() {
  ferry lab down "$work" >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ "$BENCH_FS" = fresh ]; then
    rm -f /run/ferry-lab/bench-copy
    fresh_fs_unmount
  fi
}
trap cleanup EXIT
ferry lab up "$work" --private-dir /nix >/dev/null
cfg=/run/ferry-lab/bench-copy/ssh_config
addr() { awk -v h="$1" '$1 == "Host" && $2 == h { print $3 }' "$cfg"; }

echo "file system of the hosts' stores: $(df --output=fstype,source "$work" | tail -1) (BENCH_FS=$BENCH_FS)"
if part a; then
echo "== setup: $N small files, each added to both stores"
for i in $(seq 1 "$N"); do printf 'small file %d of the benchmark closure\n' "$i" > "$work/files/f$i"; done
ls "$work/files" | sed "s|^|$work/files/|" > "$work/file-list"
t0=$(now)
xargs -P 2 -n 1 "$FERRY" --store-dir "$root/store" --state-dir "$root/var" store add < "$work/file-list" > "$work/ferry-paths"
echo "   ferry store add: $(ratio "$(echo "$(now) - $t0" | bc)" 1) s"
# Nix on the deployer side also gets a private /nix, so this machine's is untouched.
nixns() { unshare -m --propagation private sh -c "mount --bind '$work/nix-local' /nix && $1"; }
t0=$(now)
nixns "xargs -n 1000 nix-store --add < '$work/file-list' > '$work/nix-paths'"
echo "   nix-store --add: $(ratio "$(echo "$(now) - $t0" | bc)" 1) s"
fi

echo "== bootstrap the agent on every host (untimed)"
tiny=$(echo warm > "$work/warm" && ferry store add "$work/warm")
hosts=(a0 b0); for i in $(seq 1 "$HOSTS"); do hosts+=("c$i"); done
ferry copy --json --ssh-config "$cfg" --max-parallel 10 --to "$(IFS=,; echo "${hosts[*]}")" -- "$tiny" > /dev/null

if part a; then
echo "== (a) closure of $N paths to one fresh host (best of $ROUNDS rounds, each to an emptied store)"
mapfile -t ferry_paths < "$work/ferry-paths"
# What a0 sees at ferry's root and at /nix, seen from here (see `ferry lab up --private-dir`).
a0_private=/run/ferry-lab/bench-copy/hosts/a0/private
a0_ferry=$a0_private/$(echo "${root#/}" | tr / _)
t_ferry=; t_nix=
for round in $(seq 1 "$ROUNDS"); do
  if [ "$round" -gt 1 ]; then
    # Empty a0's stores again; the agent is bootstrapped anew (untimed), Nix needs nothing.
    rm -rf "${a0_ferry:?}"/* "${a0_private:?}"/nix/*
    ferry copy --json --ssh-config "$cfg" --to a0 -- "$tiny" > /dev/null
  fi
  warm "$root"
  t0=$(now)
  ferry copy --json --ssh-config "$cfg" --to a0 -- "${ferry_paths[@]}" > "$work/a-ferry.json" || true
  t_round=$(echo "$(now) - $t0" | bc)
  grep -q '"ok": true' "$work/a-ferry.json" || { cat "$work/a-ferry.json"; echo "ferry copy failed" >&2; exit 1; }
  grep -q "\"objects_sent\": $N" "$work/a-ferry.json" || { cat "$work/a-ferry.json"; echo "ferry sent the wrong count" >&2; exit 1; }
  t_ferry=$(least "$t_ferry" "$t_round")
  warm "$work/nix-local"
  t0=$(now)
  nixns "NIX_SSHOPTS='-F $cfg' nix --experimental-features nix-command copy --no-check-sigs --to ssh://root@$(addr a0) \$(cat '$work/nix-paths') 2> '$work/nix-copy.log'"
  t=$(echo "$(now) - $t0" | bc)
  t_nix=$(least "$t_nix" "$t")
  echo "   round $round: ferry $(ratio "$t_round" 1) s, nix copy $(ratio "$t" 1) s"
done
echo "   ferry: ${t_ferry} s   nix copy: ${t_nix} s   nix/ferry = $(ratio "$t_nix" "$t_ferry")x (goal >= 10x)"
echo "   ferry's last round, phase by phase (ms): $(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[0]["milliseconds"])' "$work/a-ferry.json")"
# The floor both pay: one SSH connection that runs a command (best of 3).
t_ssh=
for _ in 1 2 3; do
  t0=$(now); ssh -F "$cfg" a0 true; t_ssh=$(least "$t_ssh" "$(echo "$(now) - $t0" | bc)")
done
echo "   one ssh connection running \`true\` (best of 3): ${t_ssh} s; ferry beyond it: $(echo "$t_ferry - $t_ssh" | bc) s"
fi

if part b; then
echo "== (b) one ${BIG_MIB} MiB object"
head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom > "$work/big"
big=$(ferry store add "$work/big")
t0=$(now)
ssh -F "$cfg" b0 'cat > /dev/null' < "$work/big"
t_raw=$(echo "$(now) - $t0" | bc)
# ferry makes the object durable on the host; so does this second peer.
t0=$(now)
ssh -F "$cfg" b0 "cat > '$root/raw-copy' && sync -f '$root/raw-copy' && rm '$root/raw-copy'" < "$work/big"
t_disk=$(echo "$(now) - $t0" | bc)
t0=$(now)
ferry copy --json --ssh-config "$cfg" --to b0 -- "$big" > "$work/b-ferry.json"
t_big=$(echo "$(now) - $t0" | bc)
echo "   raw ssh cat > /dev/null: ${t_raw} s ($(ratio "$BIG_MIB" "$t_raw") MiB/s)"
echo "   raw ssh cat > file + sync: ${t_disk} s ($(ratio "$BIG_MIB" "$t_disk") MiB/s)"
echo "   ferry: ${t_big} s ($(ratio "$BIG_MIB" "$t_big") MiB/s)"
echo "   ferry throughput / raw (/dev/null) = $(ratio "$t_raw" "$t_big") (goal >= 0.80)"
echo "   ferry throughput / raw (to disk, synced) = $(ratio "$t_disk" "$t_big")"
fi

if part c; then
echo "== (c) the closure of (a) to $HOSTS fresh hosts, --max-parallel 10"
targets=(); for i in $(seq 1 "$HOSTS"); do targets+=("c$i"); done
warm "$root"
t0=$(now)
ferry copy --json --ssh-config "$cfg" --max-parallel 10 --to "$(IFS=,; echo "${targets[*]}")" -- "${ferry_paths[@]}" > "$work/c-ferry.json" || true
t_many=$(echo "$(now) - $t0" | bc)
ok=$(grep -c '"ok": true' "$work/c-ferry.json" || true)
echo "   $HOSTS hosts: ${t_many} s ($ok ok)   one host: ${t_ferry} s   ratio = $(ratio "$t_many" "$t_ferry")x (goal < 4x)"
fi
