#!/usr/bin/env bash
# Mounts the NAS (fstab entry written by cloud-init's mounts module) and retries until the
# mount target answers: a new mount target can take minutes to become reachable. Idempotent.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/qwen/node.env
dir="${NAS_MOUNT_DIR:?}"
for attempt in $(seq 1 60); do
  if mountpoint -q "$dir"; then
    exit 0
  fi
  if timeout 60 mount "$dir"; then
    exit 0
  fi
  echo "NAS mount of $dir failed (attempt $attempt of 60); retrying in 20s"
  sleep 20
done
echo "could not mount the NAS at $dir" >&2
exit 1
