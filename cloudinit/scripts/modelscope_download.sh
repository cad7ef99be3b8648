#!/usr/bin/env bash
# Run by qwen-model-download.service on the downloader: downloads the model with ModelScope
# straight into the NAS at a fixed path (resumable), then verifies every file against the
# model's file list before writing the completion marker the GPU nodes wait for.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/qwen/node.env
marker="${MODEL_DIR:?}/.qwen-download-complete"
if jq -e --arg revision "${MODEL_REVISION:?}" '.revision == $revision' "$marker" >/dev/null 2>&1; then
  exit 0
fi
# Another revision (or none) is there: nobody may serve it as this one until it is verified.
rm -f "$marker"
mountpoint -q "${NAS_MOUNT_DIR:?}" || { echo "the NAS is not mounted at $NAS_MOUNT_DIR" >&2; exit 1; }
venv=/opt/qwen/modelscope
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import modelscope" 2>/dev/null; then
  python3 -m venv "$venv"
  timeout 900 "$venv/bin/pip" install --quiet "modelscope==${MODELSCOPE_VERSION:?}"
fi
install -d "$MODEL_DIR"
timeout 43200 "$venv/bin/python" /opt/qwen/bin/modelscope_fetch.py download "${MODEL_ID:?}" "${MODEL_REVISION:?}" "$MODEL_DIR"
timeout 3600 "$venv/bin/python" /opt/qwen/bin/modelscope_fetch.py verify "$MODEL_ID" "$MODEL_REVISION" "$MODEL_DIR"
