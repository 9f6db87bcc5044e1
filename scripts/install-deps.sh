#!/bin/bash
# Install the Debian packages that building and testing libvhd need, when
# they are missing.  Quiet and fast when everything is already there.
# Runs apt-get as root, or through sudo; otherwise lists what is missing
# and exits 1.
set -euo pipefail

packages=(
  build-essential pkg-config zlib1g-dev uuid-dev
  libfuse3-dev fuse3 libaio-dev libcriterion-dev
  qemu-utils libvhdi-utils libnbd-bin python3-libnbd nbdkit
  fio clang libclang-rt-14-dev gdisk e2fsprogs
)

missing=()
for p in "${packages[@]}"; do
  # dpkg -s also succeeds for removed packages whose config files remain;
  # ask for the exact state instead.
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: not root and no sudo; install them with:" >&2
  echo "  apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
