#!/usr/bin/env bash
# Installs the pinned NVIDIA container toolkit and makes it docker's nvidia runtime. Idempotent.
# Needs no GPU driver yet, so it runs before the driver is in place.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/qwen/node.env
version="${NVIDIA_CONTAINER_TOOLKIT_VERSION:?}"
repo="${NVIDIA_CONTAINER_TOOLKIT_REPO:?}"
if [ "$(dpkg-query -W -f='${Version}' nvidia-container-toolkit 2>/dev/null || true)" != "$version" ]; then
  keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  timeout 120 curl -fsSL --retry 5 "$repo/gpgkey" | gpg --dearmor --yes -o "$keyring"
  echo "deb [signed-by=$keyring] $repo/stable/deb/\$(ARCH) /" \
    >/etc/apt/sources.list.d/nvidia-container-toolkit.list
  timeout 600 apt-get -o DPkg::Lock::Timeout=600 update
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=600 install -y \
    "nvidia-container-toolkit=$version" "nvidia-container-toolkit-base=$version" \
    "libnvidia-container-tools=$version" "libnvidia-container1=$version"
fi
nvidia-ctk runtime configure --runtime=docker
systemctl restart docker
