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
  gcc              # the ELF check test links a small program against a real library
  busybox          # small tools for builders and lab services
  python3          # the demo web app and the example policy program
  zstd             # peers and debugging of copy streams
  postgresql       # the demo's database class
  systemd          # systemd-analyze verify of generated units (systemd backend tests)
  passwd           # useradd: services run as the users their manifest names
  dpkg-dev         # ferry-debian tests: dpkg-deb builds test packages, dpkg-scanpackages
  xz-utils         # ferry-debian tests: xz-compressed .deb members
  apt              # apt-cache: the real-package test reads the machine's apt lists
  mmdebstrap       # the Debian root image of `kind = "root"` lab hosts
  gpg              # mmdebstrap: the archive keyrings (a Recommends, not pulled in here)
  libdpkg-perl     # mmdebstrap: dpkg version handling (a Recommends, not pulled in here)
  systemd-container # systemd-nspawn boots `kind = "root"` lab hosts
  gpgv             # ferry-debian verifies InRelease signatures with it
  gnupg            # ferry-debian's tests sign a throwaway test repository
  apt-utils        # apt-ftparchive packages/release for the test repository
  openssl          # https:// health checks are tested against a real `openssl s_server` with a test CA
  ansible-core     # ansible-inventory: Ansible inventories are read by Ansible itself, and the built-in reader is tested against it
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
  updated=1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian postgresql package starts a cluster; the demo runs its own.
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster 15 main stop 2>/dev/null || true
  fi
fi

# ferry-debian resolves against apt's lists, and the mirror serves only current
# versions (its real-package tests fetch them): refresh the lists on every run.
if [ "$(id -u)" -eq 0 ]; then
  [ -n "${updated:-}" ] || apt-get update -qq
elif ! ls /var/lib/apt/lists/*_InRelease >/dev/null 2>&1; then
  echo "setup: no apt lists; run \`apt-get update\` as root" >&2
  exit 2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install a stable Rust toolchain (https://rustup.rs)" >&2
  exit 2
fi
