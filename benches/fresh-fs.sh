# Sourced by the benchmarks: a freshly made, journaled ext4 file system on a loop-mounted
# sparse image, as on a server. This VM's root fs is ext4 *without* a journal, where the
# inode allocator rescans every inode freed in the last minutes on each allocation: file
# creation there costs 1x to 10x depending on what anything deleted recently (the same
# 10,000-object import took anywhere from 0.5 s to 5 s), which swamps what is compared.
#
#   fresh_fs_mount     sets FRESH_FS_MOUNT (the mount point)
#   fresh_fs_unmount   removes it all again (safe to call twice, or when nothing was made)

fresh_fs_mount() {
    FRESH_FS_IMAGE=$(mktemp /var/tmp/ferry-bench-fs.XXXXXX)
    FRESH_FS_MOUNT=$(mktemp -d /tmp/ferry-bench-fs.XXXXXX)
    truncate -s 16G "$FRESH_FS_IMAGE"
    mkfs.ext4 -q -F "$FRESH_FS_IMAGE"
    # Direct I/O on the backing file: the loop device then writes to the disk like a real
    # block device, instead of through a second page cache.
    FRESH_FS_LOOP=$(losetup --find --show --direct-io=on "$FRESH_FS_IMAGE")
    mount "$FRESH_FS_LOOP" "$FRESH_FS_MOUNT"
}

fresh_fs_unmount() {
    [ -n "${FRESH_FS_MOUNT:-}" ] || return 0
    umount "$FRESH_FS_MOUNT" && rmdir "$FRESH_FS_MOUNT"
    losetup -d "$FRESH_FS_LOOP" 2>/dev/null || true
    rm -f "$FRESH_FS_IMAGE"
    FRESH_FS_MOUNT=""
}
