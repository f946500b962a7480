#!/usr/bin/env bash
# Installs what ferry's tests and demo need on a fresh Debian machine (as root).
# Idempotent: packages already present are not fetched again.
set -euo pipefail

packages=(
  openssh-server   # real sshd for every lab host (DESIGN §11)
  openssh-client   # the deployer's ssh
  iproute2         # ip netns / veth / bridge for the lab
  util-linux       # unshare, mount namespaces
  procps           # ps/pkill used by lab teardown checks
  busybox          # small tools for builders and lab services
  python3          # the demo web app and the example policy program
  zstd             # peers and debugging of copy streams
  postgresql       # the demo's database class
  systemd          # systemd-analyze verify of generated units (systemd backend tests)
  passwd           # useradd: services run as the users their manifest names
  gpgv             # ferry-debian verifies InRelease signatures with it
  gnupg            # ferry-debian's tests sign a throwaway test repository
  dpkg-dev         # dpkg-deb --build for the test repository
  apt-utils        # apt-ftparchive packages/release for the test repository
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian postgresql package starts a cluster; the demo runs its own.
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster 15 main stop 2>/dev/null || true
  fi
fi

# ferry-debian resolves against apt's lists (its real-machine test needs them).
if ! ls /var/lib/apt/lists/*_InRelease >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
  else
    echo "setup: no apt lists; run \`apt-get update\` as root" >&2
    exit 2
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install a stable Rust toolchain (https://rustup.rs)" >&2
  exit 2
fi
