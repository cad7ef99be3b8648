#!/usr/bin/env bash
# First-boot bootstrap of the downloader node, run once by cloud-init's runcmd: mount the NAS,
# then start the (resumable) download service.
set -euo pipefail
install -d /var/lib/qwen /var/log/qwen
timeout 1800 /opt/qwen/bin/mount-nas.sh
systemctl enable qwen-model-download.service
systemctl start --no-block qwen-model-download.service
touch /var/lib/qwen/bootstrap-done
