# shellcheck shell=bash
# Step (on the Ray head): wait until vLLM answers /health, then check that the API key works and
# the model is served under its name. Prints {"models": [...]}.
# Env: PORT, SERVED_NAME, HEALTH_TIMEOUT (seconds).
name=qwen-vllm
qwen_diagnostics() {
  echo "qwen: last lines of the $name container log:"
  docker logs --tail 60 "$name" 2>&1
}
restarts_before=$(docker inspect -f '{{ .RestartCount }}' "$name")
healthy() {
  if curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/health"; then
    return 0
  fi
  local restarts
  restarts=$(docker inspect -f '{{ .RestartCount }}' "$name")
  [ $((restarts - restarts_before)) -le 3 ] || fail "vLLM restarted $((restarts - restarts_before)) times while starting; it keeps crashing"
  return 1
}
wait_until "$HEALTH_TIMEOUT" "vLLM /health on port $PORT" healthy
# curl reads the Authorization header from a root-only file: the key is never on a command line.
models=$(curl -fsS --max-time 30 -H @/etc/qwen/secrets/auth-header "http://127.0.0.1:$PORT/v1/models") ||
  fail "/v1/models refused the API key"
jq -e --arg name "$SERVED_NAME" 'any(.data[]; .id == $name)' <<<"$models" >/dev/null ||
  fail "vLLM does not serve a model named $SERVED_NAME"
progress "vLLM is healthy and serves $SERVED_NAME"
jq -c '{models: [.data[].id]}' <<<"$models" >&3
