#!/usr/bin/env bash
# The host-side floor of benches/copy.sh (not a test; run as root): benches/copy-floor.py on
# a fresh journaled ext4 (benches/fresh-fs.sh), where copy.sh's lab hosts keep their stores.
#   N=10000 HOSTS=20 MAX_PARALLEL=10 (environment overrides)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root (it mounts a loop device)" >&2; exit 2; }
# shellcheck source=benches/fresh-fs.sh
. "$here/benches/fresh-fs.sh"
fresh_fs_mount
trap fresh_fs_unmount EXIT
python3 "$here/benches/copy-floor.py" "$FRESH_FS_MOUNT" "${N:-10000}" "${HOSTS:-20}" "${MAX_PARALLEL:-10}"
