# shellcheck shell=bash
# Step (on the Ray head): run `vllm serve` in its own container on 127.0.0.1 (the TLS proxy is the
# public door), restarted by docker after a reboot or an eviction. The API key arrives on stdin and
# is written only to root-only files.
# Env: IMAGE, MODEL_DIR, MODEL_REVISION, MODEL_ROOT, SERVED_NAME, PORT, TP, PP, MAX_MODEL_LEN, GPU_MEMORY_UTILIZATION,
#      NODE_IP, RAY_PORT, EXTRA_ARGS (one argument per line), MODEL_WAIT_TIMEOUT (seconds), EXECUTOR (mp: one
#      host, no Ray; ray), DEVICE_ARGS and CONTAINER_ENV (one per line), PRUNE_IMAGES (0|1).
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
  --distributed-executor-backend "$EXECUTOR"
  --max-model-len "$MAX_MODEL_LEN"
  --gpu-memory-utilization "$GPU_MEMORY_UTILIZATION")
if [ -n "$EXTRA_ARGS" ]; then
  mapfile -t extra <<<"$EXTRA_ARGS"
  args+=("${extra[@]}")
fi

accelerator_docker_args
ray_args=()
if [ "$EXECUTOR" = ray ]; then
  # The driver joins the local Ray node through the shared /tmp/ray.
  ray_args=(-e RAY_ADDRESS="$NODE_IP:$RAY_PORT" -v /var/lib/qwen/ray:/tmp/ray)
fi
want=$(config_digest "$IMAGE" "$key_digest" "$MODEL_REVISION" "${ACCEL_DOCKER_ARGS[@]}" "${ray_args[@]}" "${args[@]}")
if container_is_current "$name" "$want"; then
  progress "vLLM already running with these settings"
else
  docker rm -f "$name" 2>/dev/null || true
  # vLLM checks the key too (behind the proxy, as a second line); it reads it from the mounted file
  # (see common.sh), so the key is neither on a command line nor in `docker inspect`.
  docker run -d --name "$name" --label "qwen.config=$want" --restart unless-stopped \
    --network host --ipc host "${ACCEL_DOCKER_ARGS[@]}" "${ray_args[@]}" \
    -v "$QWEN_API_KEY_FILE:$QWEN_API_KEY_MOUNT:ro" \
    -v "$MODEL_ROOT:$MODEL_ROOT:ro,rslave" \
    --entrypoint sh "$IMAGE" -c "$(exec_vllm_with_key VLLM_API_KEY)" vllm "${args[@]}"
  progress "started vllm serve $SERVED_NAME (tensor parallel $TP x pipeline parallel $PP, $EXECUTOR executor)"
  # Images no container uses any more (a previous serving image) only take disk space. Never on a
  # machine the team owns: its other images are theirs.
  if [ "$PRUNE_IMAGES" = 1 ]; then
    docker image prune -af >/dev/null || true
  fi
fi
