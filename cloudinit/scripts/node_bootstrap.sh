#!/usr/bin/env bash
# First-boot bootstrap of a GPU node, run once by cloud-init's runcmd after its packages are in.
# Reads /etc/qwen/node.env. Docker and the container toolkit come first so the prefetch (image
# pull, model download) can start as soon as its settings arrive, overlapping the driver install.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/qwen/node.env
install -d /var/lib/qwen /var/log/qwen /etc/qwen

timeout 1200 /opt/qwen/bin/install-container-toolkit.sh
systemctl enable --now docker
# Starts qwen-prefetch.service once /etc/qwen/prefetch.env exists (the serving layer writes it).
systemctl enable --now qwen-prefetch.path
if [ "${INSTALL_NVIDIA_DRIVER:-0}" = 1 ]; then
  timeout 2400 /opt/qwen/bin/install-nvidia-driver.sh
fi
if [ -n "${NAS_MOUNT_DIR:-}" ]; then
  timeout 1800 /opt/qwen/bin/mount-nas.sh
fi
touch /var/lib/qwen/bootstrap-done
