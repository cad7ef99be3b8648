#!/usr/bin/env bash
# Run by qwen-prefetch.service: pulls the serving image and, when the weights come from
# Hugging Face, downloads them to the local disk with the image's own huggingface_hub.
# Its settings are /etc/qwen/prefetch.env, written by the serving layer's prefetch step.
# Resumable and idempotent; systemd restarts it on failure and runs it again after a reboot.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/qwen/prefetch.env
timeout 600 bash -c 'until docker info >/dev/null 2>&1; do sleep 5; done'
timeout 3600 docker pull "${IMAGE:?}"
if [ "${PREFETCH_MODEL:-0}" != 1 ]; then
  exit 0
fi
marker="${MODEL_DIR:?}/.qwen-download-complete"
if [ -f "$marker" ]; then
  exit 0
fi
install -d "$MODEL_DIR"
timeout 7200 docker run --rm --network host \
  -v "$MODEL_ROOT:$MODEL_ROOT" -v /opt/qwen/bin/hf_download.py:/hf_download.py:ro \
  --entrypoint python3 "$IMAGE" /hf_download.py "${MODEL_ID:?}" "${MODEL_REVISION:?}" "$MODEL_DIR"
