#!/usr/bin/env bash
# First-boot bootstrap of a GPU node, run once by cloud-init's runcmd after its packages are in.
# Reads /etc/qwen/node.env. Installs what the node needs beyond packages, then starts the
# prefetch service so the image pull (and model download) overlap the GPU driver install.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/qwen/node.env
install -d /var/lib/qwen /var/log/qwen

if [ "${INSTALL_NVIDIA_DRIVER:-0}" = 1 ]; then
  timeout 2400 /opt/qwen/bin/install-nvidia-driver.sh
fi
if [ -n "${NAS_MOUNT_DIR:-}" ]; then
  timeout 1800 /opt/qwen/bin/mount-nas.sh
fi
timeout 1200 /opt/qwen/bin/install-container-toolkit.sh
systemctl enable --now docker
systemctl enable qwen-prefetch.service
systemctl start --no-block qwen-prefetch.service
touch /var/lib/qwen/bootstrap-done
