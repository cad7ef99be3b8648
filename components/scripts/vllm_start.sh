# shellcheck shell=bash
# Step (on the Ray head): run `vllm serve` in its own container on 127.0.0.1 (the TLS proxy is the
# public door), restarted by docker after a reboot or an eviction. The API key arrives on stdin and
# is written only to root-only files.
# Env: IMAGE, MODEL_DIR, MODEL_REVISION, MODEL_ROOT, SERVED_NAME, PORT, TP, PP, MAX_MODEL_LEN, GPU_MEMORY_UTILIZATION,
#      NODE_IP, RAY_PORT, PRIVATE_INTERFACE, EXTRA_ARGS (one argument per line), MODEL_WAIT_TIMEOUT (seconds).
name=qwen-vllm
qwen_diagnostics() {
  if [ -f /etc/systemd/system/qwen-prefetch.service ]; then
    echo "qwen: last lines of the model prefetch (journalctl -u qwen-prefetch):"
    journalctl -u qwen-prefetch --no-pager -n 20
  fi
}
api_key=""
IFS= read -r api_key || true
[ -n "$api_key" ] || fail "no API key was given on stdin"
install -d -m 700 /etc/qwen/secrets
(
  umask 077
  printf '%s' "$api_key" >"$QWEN_API_KEY_FILE"
  printf 'Authorization: Bearer %s\n' "$api_key" >/etc/qwen/secrets/auth-header
)
# Env files of earlier versions held the key; docker showed it in `docker inspect`.
rm -f /etc/qwen/secrets/vllm.env /etc/qwen/secrets/bench.env
key_digest=$(sha256sum "$QWEN_API_KEY_FILE" | cut -c1-16)
unset api_key

weights_ready() {
  jq -e --arg revision "$MODEL_REVISION" '.revision == $revision' "$MODEL_DIR/.qwen-download-complete" >/dev/null 2>&1
}
wait_until "$MODEL_WAIT_TIMEOUT" "the model weights (revision $MODEL_REVISION) in $MODEL_DIR" weights_ready

args=(serve "$MODEL_DIR"
  --served-model-name "$SERVED_NAME"
  --host 127.0.0.1 --port "$PORT"
  --tensor-parallel-size "$TP" --pipeline-parallel-size "$PP"
  --distributed-executor-backend ray
  --max-model-len "$MAX_MODEL_LEN"
  --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION")
if [ -n "$EXTRA_ARGS" ]; then
  mapfile -t extra <<<"$EXTRA_ARGS"
  args+=("${extra[@]}")
fi

want=$(config_digest "$IMAGE" "$key_digest" "$NODE_IP" "$PRIVATE_INTERFACE" "$MODEL_REVISION" "${args[@]}")
if container_is_current "$name" "$want"; then
  progress "vLLM already running with these settings"
else
  docker rm -f "$name" 2>/dev/null || true
  # The driver joins the local Ray node through the shared /tmp/ray. vLLM checks the key too
  # (behind the proxy, as a second line); it reads it from the mounted file (see common.sh).
  docker run -d --name "$name" --label "qwen.config=$want" --restart unless-stopped \
    --network host --ipc host --gpus all \
    -v "$QWEN_API_KEY_FILE:$QWEN_API_KEY_MOUNT:ro" \
    -e RAY_ADDRESS="$NODE_IP:$RAY_PORT" -e VLLM_HOST_IP="$NODE_IP" \
    -e NCCL_SOCKET_IFNAME="$PRIVATE_INTERFACE" -e GLOO_SOCKET_IFNAME="$PRIVATE_INTERFACE" \
    -v "$MODEL_ROOT:$MODEL_ROOT:ro,rslave" -v /var/lib/qwen/ray:/tmp/ray \
    --entrypoint sh "$IMAGE" -c "$(exec_vllm_with_key VLLM_API_KEY)" vllm "${args[@]}"
  progress "started vllm serve $SERVED_NAME (tensor parallel $TP x pipeline parallel $PP)"
  # Images no container uses any more (a previous serving image) only take disk space.
  docker image prune -af >/dev/null || true
fi
