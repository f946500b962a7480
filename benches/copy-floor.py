#!/usr/bin/env python3
"""The host-side floor of benches/copy.sh on this machine (not a test; run as root).

Only the kernel's part of what an agent does to receive many small objects: per object
`open(O_TMPFILE)`, write, `fchmod`, `futimens`; per 1,024 objects a `syncfs` and then a
`linkat` of each into place (data durable before any name appears). No SSH, hashing or
database. It runs once for one "host", then for HOSTS hosts, MAX_PARALLEL at a time, like
`ferry copy --max-parallel 10`, each host into its own directory of one file system.

Usage: python3 benches/copy-floor.py DIR [N] [HOSTS] [MAX_PARALLEL]
(benches/copy-floor.sh runs it on a fresh journaled ext4, as copy.sh's lab hosts are.)
"""
import ctypes
import multiprocessing
import os
import resource
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
BATCH = 1024
DATA = b"small file of the benchmark closure\n"


def syncfs(fd):
    if libc.syncfs(fd) != 0:
        raise OSError(ctypes.get_errno(), "syncfs")


def host(args):
    base, index, count = args
    directory = os.path.join(base, f"host{index}")
    os.mkdir(directory)
    dir_fd = os.open(directory, os.O_RDONLY)
    pending = []

    def register():
        syncfs(dir_fd)
        for name, fd in pending:
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
            os.close(fd)
        pending.clear()

    for i in range(count):
        fd = os.open(directory, os.O_WRONLY | os.O_TMPFILE, 0o600)
        os.write(fd, DATA)
        os.fchmod(fd, 0o444)
        os.utime(fd, ns=(10**9, 10**9))
        pending.append((f"{i:032d}-object", fd))
        if len(pending) == BATCH:
            register()
    register()
    os.fsync(dir_fd)
    os.close(dir_fd)


def main():
    base = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    hosts = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    parallel = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * BATCH)), hard))
    started = time.perf_counter()
    host((base, 0, count))
    one = time.perf_counter() - started
    started = time.perf_counter()
    with multiprocessing.Pool(parallel) as pool:
        pool.map(host, [(base, i, count) for i in range(1, hosts + 1)])
    many = time.perf_counter() - started
    print(f"kernel floor for {count} small objects: 1 host {one:.2f} s, "
          f"{hosts} hosts ({parallel} at a time) {many:.2f} s = {many / one:.1f}x one host")


if __name__ == "__main__":
    main()
