#!/usr/bin/env bash
# Resolving, fetching and unpacking a Debian package's whole closure (issue 13):
# ferry-debian (read the apt lists and verify their signatures, resolve, fetch
# every .deb with its sha256 checked, unpack each into its own durable store
# object) against apt (`apt-get install --download-only` into an empty archive
# dir with an empty dpkg status, then `dpkg-deb -x` of every .deb), side by side
# in one run. Both download from the machine's configured apt sources. Run as root.
#
#   bash benches/debian-closure.sh [PACKAGE…]     (default: postgresql-15)
#
# Never part of the test suite; prints times and the ratio ferry / apt (goal ≤ 1.2).
set -euo pipefail
shopt -s inherit_errexit  # a failed run inside $(…) stops the bench
cd "$(dirname "$0")/.."
packages=("${@:-postgresql-15}")
work=$(mktemp -d /var/tmp/ferry-bench-debian.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet -p ferry-debian --example closure
closure=$PWD/target/release/examples/closure

now() { date +%s.%N; }

# ferry-debian, from an empty cache and an empty store.
run_ferry() {
  rm -rf "$work/ferry" && mkdir -p "$work/ferry" && sync
  local t0 t1
  t0=$(now)
  "$closure" --cache "$work/ferry/cache" --store "$work/ferry/store" --state "$work/ferry/var" \
    "${packages[@]}" > "$work/ferry.list"
  t1=$(now)
  echo "$t1 - $t0" | bc
}

# apt: download the same closure (nothing counts as installed), then unpack each .deb.
run_apt() {
  rm -rf "$work/apt" && mkdir -p "$work/apt/archives/partial" "$work/apt/unpacked" && sync
  local t0 t1 deb
  t0=$(now)
  apt-get install -qq --download-only -y --no-install-recommends \
    -o APT::Sandbox::User=root \
    -o Dir::Cache::archives="$work/apt/archives" -o Dir::State::status=/dev/null \
    "${packages[@]}" > /dev/null
  for deb in "$work"/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$work/apt/unpacked/$(basename "$deb" .deb)"
  done
  t1=$(now)
  echo "$t1 - $t0" | bc
}

# Two rounds, the order swapped in the second (a caching mirror or proxy
# would favour whoever comes second); each tool's best round counts.
best() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
ferry_s="" apt_s=""
for round in 1 2; do
  if [ "$round" = 1 ]; then f=$(run_ferry); a=$(run_apt); else a=$(run_apt); f=$(run_ferry); fi
  printf 'round %d: ferry %.2f s, apt %.2f s\n' "$round" "$f" "$a"
  ferry_s=$(best "$ferry_s" "$f")
  apt_s=$(best "$apt_s" "$a")
done

ferry_n=$(wc -l < "$work/ferry.list")
apt_n=$(ls "$work"/apt/archives/*.deb | wc -l)
printf 'closure of %s: ferry %d packages, apt %d packages\n' "${packages[*]}" "$ferry_n" "$apt_n"
printf 'ferry-debian (indexes + resolve + fetch + unpack + durable store add): %.2f s\n' "$ferry_s"
printf 'apt-get --download-only + dpkg-deb -x (no fsync):                     %.2f s\n' "$apt_s"
printf 'ratio ferry / apt: %.2f (goal <= 1.2)\n' "$(echo "$ferry_s / $apt_s" | bc -l)"
