#!/usr/bin/env bash
# Benchmark: `ferry store add` against `nix-store --add` and `b3sum` on the same trees.
#
#   bash benches/store-add.sh            # both trees
#   FERRY_BENCH_DIR=/var/tmp/x bash benches/store-add.sh
#   BENCH_FS=here bash benches/store-add.sh   # stores on this machine's root fs
#
# By default (BENCH_FS=fresh) the stores every tool writes go to a freshly made, journaled ext4
# file system (benches/fresh-fs.sh says why); the source trees stay where they are.
#
# Trees (generated once, deterministic, incompressible; cached in $FERRY_BENCH_DIR):
#   big:   80,000 files, ~1 GiB   (40 dirs × 20 subdirs × 100 files, 1–26 KiB each)
#   small:  5,000 files, ~280 MB  (50 dirs × 100 files, 4–108 KiB each)
#
# Every tool runs on a warm page cache (the tree is read once right before each timing),
# and `sync` runs (untimed) between timings so one tool's writeback does not slow the next.
# ferry's time includes making the object durable (syncfs); nix-store's does not fsync files.
# b3sum runs as `find … -print0 | xargs -0 -P$(nproc) -n 1000 b3sum` (one process per core).
#
# File creation cost depends on the file system's recent history: ext4 without a journal (as
# on the project's machines) skips inodes freed in the last 30 s when allocating, so creating
# many files right after deleting many is much slower, and the first tool to run after a mass
# deletion pays for it. The script deletes nothing between timings, waits 31 s after deleting
# an earlier run, and runs two rounds with the tools alternating, keeping each one's best
# time. Other processes' file churn on the same file system still shows in the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need nix-store nix-bin
need b3sum b3sum
need python3 python3

BENCH_DIR=${FERRY_BENCH_DIR:-/var/tmp/ferry-bench}
mkdir -p "$BENCH_DIR"
BENCH_FS=${BENCH_FS:-fresh}
RUN_DIR=$BENCH_DIR
# shellcheck source=benches/fresh-fs.sh
. benches/fresh-fs.sh
if [ "$BENCH_FS" = fresh ]; then
    fresh_fs_mount
    trap fresh_fs_unmount EXIT
    RUN_DIR=$FRESH_FS_MOUNT
fi

generate() { # name files dirs subdirs min_kib max_kib
    local name=$1 tree="$BENCH_DIR/$1"
    [ -f "$tree.done" ] && return
    rm -rf "$tree"
    python3 - "$tree" "$2" "$3" "$4" "$5" "$6" <<'PY'
import os, random, sys
root, files, dirs, subdirs, lo, hi = sys.argv[1], *map(int, sys.argv[2:])
rng = random.Random(20261124)
per_dir = files // (dirs * subdirs)
total = 0
for d in range(dirs):
    for s in range(subdirs):
        where = os.path.join(root, f"d{d:02}", f"s{s:02}") if subdirs > 1 else os.path.join(root, f"d{d:02}")
        os.makedirs(where, exist_ok=True)
        for f in range(per_dir):
            size = rng.randint(lo * 1024, hi * 1024)
            with open(os.path.join(where, f"f{f:03}.bin"), "wb") as out:
                out.write(rng.randbytes(size))
            total += size
print(f"generated {root}: {files} files, {total / 2**20:.0f} MiB", file=sys.stderr)
PY
    touch "$tree.done"
}

generate big 80000 40 20 1 26
generate small 5000 50 1 4 108

echo "building ferry (release)…" >&2
cargo build --release --quiet --bin ferry
FERRY=$PWD/target/release/ferry

now() { date +%s.%N; }
warm() { tar -cf - -C "$1" . >/dev/null; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

run_one() { # tree
    local tree="$BENCH_DIR/$1" work
    work=$(mktemp -d "$RUN_DIR/run-XXXXXX")
    local files bytes
    files=$(find "$tree" -type f | wc -l)
    bytes=$(du -sb "$tree" | cut -f1)

    # Two rounds, tools alternating, each into a fresh store; the best time of each counts.
    # The first tool to create files after a mass deletion pays for reusing the freed inodes,
    # so a single round in a fixed order would favour whoever runs second.
    local round t0 t1 ferry_times="" nix_times="" b3_times=""
    for round in 1 2; do
        sync; warm "$tree"
        t0=$(now)
        "$FERRY" --store-dir "$work/ferry$round/store" --state-dir "$work/ferry$round/var" store add "$tree" --name bench >/dev/null
        t1=$(now); ferry_times="$ferry_times $(elapsed "$t0" "$t1")"

        sync; warm "$tree"
        t0=$(now)
        nix-store --store "$work/nix$round" --add "$tree" >/dev/null
        t1=$(now); nix_times="$nix_times $(elapsed "$t0" "$t1")"

        sync; warm "$tree"
        t0=$(now)
        (cd "$tree" && find . -type f -print0 | xargs -0 -P"$(nproc)" -n 1000 b3sum >/dev/null)
        t1=$(now); b3_times="$b3_times $(elapsed "$t0" "$t1")"
    done

    python3 - "$1" "$files" "$bytes" "$ferry_times" "$nix_times" "$b3_times" <<'PY'
import sys
name, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ferry_all, nix_all, b3_all = ([float(x) for x in arg.split()] for arg in sys.argv[4:])
ferry, nix, b3 = min(ferry_all), min(nix_all), min(b3_all)
mib = size / 2**20
show = lambda times: ", ".join(f"{t:.2f}" for t in times)
print(f"{name}: {files} files, {mib:.0f} MiB (warm page cache; best of {len(ferry_all)} rounds)")
print(f"  ferry store add  {ferry:7.2f} s  {mib / ferry:7.0f} MiB/s   (rounds: {show(ferry_all)})")
print(f"  nix-store --add  {nix:7.2f} s  {mib / nix:7.0f} MiB/s   (rounds: {show(nix_all)})")
print(f"  b3sum (xargs -P) {b3:7.2f} s  {mib / b3:7.0f} MiB/s   (rounds: {show(b3_all)})")
print(f"  nix-store / ferry = {nix / ferry:.1f}x   (goal >= 5x)")
print(f"  ferry / b3sum     = {ferry / b3:.1f}x   (goal <= 2x)")
PY
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
    [ "$BENCH_FS" = fresh ] || sleep 31 # let ext4 forget the inodes just freed (see the top of this file)
}

echo "cores: $(nproc); $(nix-store --version); $(b3sum --version); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "stores on: $(df --output=fstype,source "$RUN_DIR" | tail -1) (BENCH_FS=$BENCH_FS)"
run_one small
run_one big
