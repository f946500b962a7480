#!/bin/sh
# Scale benchmark (not a test): `ferry check` on a generated site with 1,000
# classes and 10,000 services with dependencies. Prints wall time and peak
# memory. Goal on the project machine (2 cores): < 1 s and < 500 MB.
#
#   lang/benches/scale.sh [CLASSES] [SERVICES_PER_CLASS]
#
# Needs GNU time (/usr/bin/time, Debian package `time`).
set -eu
cd "$(dirname "$0")/../.."
classes=${1:-1000}
per_class=${2:-10}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo build --release -q -p ferry -p ferry-lang --bin ferry --example gen_scale
./target/release/examples/gen_scale "$dir" "$classes" "$per_class"
echo "site: $(wc -c < "$dir/site.conf") bytes, inventory: $(grep -c '^\[\[host\]\]' "$dir/hosts.toml") hosts"
/usr/bin/time -v ./target/release/ferry check "$dir/site.conf" 2> "$dir/time.txt"
wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/time.txt")
rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/time.txt")
echo "ferry check: wall ${wall}, peak memory $((rss_kb / 1024)) MiB"
