#!/usr/bin/env bash
# Build benchmark (issue 5): a generated site of 500 packages in a deep and
# wide graph. Prints the full build with --jobs 2 vs --jobs 1 (speedup) and a
# no-op rebuild vs `ferry check` on the same site (goal: ≤ 1.5×).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
ferry=$PWD/target/release/ferry
work=$(mktemp -d /tmp/ferry-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 benches/gen-build-site.py "$work/site" "${PACKAGES:-500}" "${WIDTH:-25}"

now() { date +%s.%N; }
build_in() { # $1 = dir, $2.. = args
  local dir=$1; shift
  FERRY_STORE_DIR=$dir/store FERRY_STATE_DIR=$dir/var "$ferry" build "$work/site" "$@" >/dev/null
}
t0=$(now); build_in "$work/j1" --jobs 1; t1=$(now)
build_in "$work/j2" --jobs 2; t2=$(now)
runs=5
t3=$(now); for _ in $(seq $runs); do build_in "$work/j2" --jobs 2; done; t4=$(now)
t5=$(now); for _ in $(seq $runs); do "$ferry" check "$work/site" >/dev/null; done; t6=$(now)

python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$runs" <<'PY'
import sys
t0, t1, t2, t3, t4, t5, t6 = map(float, sys.argv[1:8]); runs = int(sys.argv[8])
j1, j2 = t1 - t0, t2 - t1
noop, check = (t4 - t3) / runs, (t6 - t5) / runs
print(f"full build, --jobs 1: {j1:8.2f} s")
print(f"full build, --jobs 2: {j2:8.2f} s   speedup {j1 / j2:.2f}x")
print(f"no-op rebuild:        {noop * 1000:8.1f} ms")
print(f"ferry check:          {check * 1000:8.1f} ms   no-op / check = {noop / check:.2f}x (goal <= 1.5x)")
PY
