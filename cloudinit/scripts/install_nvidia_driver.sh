#!/usr/bin/env bash
# Installs the NVIDIA datacenter driver from Ubuntu's archive (DKMS, built for the running kernel)
# and loads it without a reboot, so the bootstrap steps never lose their SSH session. Idempotent.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/qwen/node.env
if nvidia-smi -L >/dev/null 2>&1; then
  exit 0
fi
package="${NVIDIA_DRIVER_PACKAGE:?}"
utils="nvidia-utils-${package##*-headless-}"
DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get -o DPkg::Lock::Timeout=600 install -y \
  "linux-headers-$(uname -r)" "$package" "$utils"
# nouveau may have claimed the GPUs at boot; nothing uses it on a headless server.
modprobe -r nouveau 2>/dev/null || true
modprobe nvidia
systemctl enable --now nvidia-persistenced 2>/dev/null || true
nvidia-smi -L
