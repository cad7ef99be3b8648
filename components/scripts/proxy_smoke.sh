# shellcheck shell=bash
# Step (on the head): check the TLS proxy as a client would. The certificate must verify for the
# public IP against the program's CA, /health must answer without the key, other paths must refuse
# a request without it (401) and a path the proxy does not forward must be 404 even with it; vLLM
# must not answer on the private IP; then one streamed chat request through the proxy is measured.
# Prints {"status", "seconds", "withoutKey": {path: HTTP status}}.
# Env: PORT, PUBLIC_IP, PRIVATE_IP, UPSTREAM_PORT, CA_CERT, SERVED_NAME.
name=qwen-proxy
qwen_diagnostics() {
  echo "qwen: last lines of the $name container log:"
  docker logs --tail 40 "$name" 2>&1
}
header=/etc/qwen/secrets/proxy-auth-header
[ -f "$header" ] || fail "$header is missing; the proxy-start step writes it"
ca=/etc/qwen/proxy-ca.pem
printf '%s\n' "$CA_CERT" >"$ca"
install -d /var/lib/qwen
response=/var/lib/qwen/proxy-smoke-response
base="https://$PUBLIC_IP:$PORT"
# Azure and Alibaba Cloud NAT the public IP: it is not on this host's NIC. Connect to 127.0.0.1
# while curl still sends the public IP and verifies the certificate for it.
through_proxy() {
  curl -sS --max-time 120 --cacert "$ca" --connect-to "$PUBLIC_IP:$PORT:127.0.0.1:$PORT" "$@"
}
http_status() {
  through_proxy -o /dev/null -w '%{http_code}' "$@" || true
}
health_answers() {
  [ "$(http_status "$base/health")" = 200 ]
}
wait_until 120 "the TLS proxy to answer /health on port $PORT" health_answers

without_key='{}'
for path in /health /v1/models /v1/chat/completions /invocations /metrics /tokenize; do
  code=$(http_status "$base$path")
  without_key=$(jq -c --arg path "$path" --arg code "$code" '. + {($path): ($code | tonumber)}' <<<"$without_key")
  expected=401
  if [ "$path" = /health ]; then
    expected=200
  fi
  [ "$code" = "$expected" ] || fail "$path answered HTTP $code without the API key; expected $expected"
done
code=$(http_status -H @"$header" "$base/metrics")
[ "$code" = 404 ] || fail "/metrics answered HTTP $code with the API key; the proxy must not forward it (404)"
# vLLM listens on 127.0.0.1 only: on the private IP its port must refuse the connection.
if curl -sS -o /dev/null --connect-timeout 5 --max-time 10 "http://$PRIVATE_IP:$UPSTREAM_PORT/health"; then
  fail "vLLM answers on $PRIVATE_IP:$UPSTREAM_PORT; it must listen on 127.0.0.1 only"
fi

body=$(jq -nc --arg model "$SERVED_NAME" \
  '{model: $model, messages: [{role: "user", content: "Reply with one word: ready."}], max_tokens: 8, temperature: 0, stream: true}')
result=$(through_proxy -H @"$header" -H 'Content-Type: application/json' --data-binary "$body" -o "$response" \
  -w '%{http_code} %{time_total}' "$base/v1/chat/completions") || fail "the chat request through the proxy failed"
status=${result% *}
seconds=${result#* }
[ "$status" = 200 ] || fail "the chat request through the proxy answered HTTP $status: $(head -c 300 "$response")"
grep -q '^data: \[DONE\]' "$response" || fail "the streamed chat answer did not end with data: [DONE]"
progress "TLS proxy: /health open, other paths refused without the key, one chat request in ${seconds}s"
jq -nc --argjson status "$status" --argjson seconds "$seconds" --argjson withoutKey "$without_key" \
  '{status: $status, seconds: $seconds, withoutKey: $withoutKey}' >&3
