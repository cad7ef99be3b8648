#!/usr/bin/env bash
# Run by qwen-prefetch.service: pulls the serving image and, when the weights come from
# Hugging Face, downloads them to the local disk with the image's own huggingface_hub.
# Its settings are /etc/qwen/prefetch.env, written by the serving layer's prefetch step.
# Resumable and idempotent; systemd restarts it on failure and runs it again after a reboot.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/qwen/prefetch.env
timeout 600 bash -c 'until docker info >/dev/null 2>&1; do sleep 5; done'
if ! docker image inspect "${IMAGE:?}" >/dev/null 2>&1; then
  # A small system disk holds one serving image (see the disk check in stacks/settings.py): for a
  # new one, the old containers and images go first. The serving steps start them again.
  free_gb=$(df --output=avail -BG /var/lib/docker | tail -n 1 | tr -dc '0-9')
  if [ "$free_gb" -lt "${IMAGE_DISK_GB:?}" ]; then
    echo "qwen-prefetch: ${free_gb} GB free, ${IMAGE_DISK_GB} GB needed for $IMAGE: removing the old serving containers and images"
    docker rm -f qwen-vllm qwen-ray >/dev/null 2>&1 || true
    docker image prune -af
  fi
  timeout 3600 docker pull "$IMAGE"
fi
if [ "${PREFETCH_MODEL:-0}" != 1 ]; then
  exit 0
fi
marker="${MODEL_DIR:?}/.qwen-download-complete"
if jq -e --arg revision "${MODEL_REVISION:?}" '.revision == $revision' "$marker" >/dev/null 2>&1; then
  exit 0
fi
# Another revision (or none) is there: download, resuming what matches, before marking it complete.
rm -f "$marker"
install -d "$MODEL_DIR"
timeout 7200 docker run --rm --network host \
  -v "$MODEL_ROOT:$MODEL_ROOT:rslave" -v /opt/qwen/bin/hf_download.py:/hf_download.py:ro \
  --entrypoint python3 "$IMAGE" /hf_download.py "${MODEL_ID:?}" "${MODEL_REVISION:?}" "$MODEL_DIR"
