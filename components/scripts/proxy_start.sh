# shellcheck shell=bash
# Step (on the head): run the TLS proxy (nginx) in front of vLLM, restarted by docker after a reboot
# or an eviction. Stdin: the API key (one line), then the server's private key (PEM); both are
# written only to root-only files, and the directory with the config that checks the key is
# mounted read-only. Idempotent: a running proxy with the same files and image is kept.
# Env: IMAGE, PORT, NGINX_CONF, CONF_MOUNT, SERVER_CERT.
name=qwen-proxy
conf_dir=/etc/qwen/secrets/proxy
qwen_diagnostics() {
  echo "qwen: last lines of the $name container log:"
  docker logs --tail 40 "$name" 2>&1
}
api_key=""
IFS= read -r api_key || true
server_key=$(cat)
# The key becomes part of an nginx regex: only the generated form (letters and digits) is taken.
[[ "$api_key" =~ ^[A-Za-z0-9]{16,}$ ]] || fail "no API key (16 or more letters and digits) was given on stdin"
[[ "$server_key" == *"PRIVATE KEY-----"* ]] || fail "no server private key (PEM) was given on stdin"
install -d -m 700 /etc/qwen/secrets "$conf_dir"
(
  umask 077
  printf '"~^Bearer %s$" 1;\n' "$api_key" >"$conf_dir/api-key.map"
  printf 'Authorization: Bearer %s\n' "$api_key" >/etc/qwen/secrets/proxy-auth-header
  printf '%s\n' "$server_key" >"$conf_dir/server.key"
  printf '%s\n' "$SERVER_CERT" >"$conf_dir/server.crt"
  printf '%s\n' "$NGINX_CONF" >"$conf_dir/nginx.conf"
)
unset api_key server_key
files_digest=$(cat "$conf_dir/nginx.conf" "$conf_dir/api-key.map" "$conf_dir/server.crt" "$conf_dir/server.key" | sha256sum)
want=$(config_digest "$IMAGE" "$CONF_MOUNT" "$files_digest")
if container_is_current "$name" "$want"; then
  progress "the TLS proxy already runs with this configuration"
else
  if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    progress "pulling $IMAGE"
    timeout 600 docker pull "$IMAGE" >/dev/null ||
      fail "could not pull $IMAGE in 10 minutes; point qwen:serving.proxyImage at a registry mirror of the same tag"
  fi
  mount=(-v "$conf_dir:$CONF_MOUNT:ro")
  # A broken configuration must not replace a proxy that still runs: nginx checks it first.
  timeout 120 docker run --rm "${mount[@]}" --entrypoint nginx "$IMAGE" -t -c "$CONF_MOUNT/nginx.conf" ||
    fail "nginx refused the generated configuration"
  docker rm -f "$name" 2>/dev/null || true
  # Host network: nginx reaches vLLM on 127.0.0.1 and listens on the API port of every interface.
  docker run -d --name "$name" --label "qwen.config=$want" --restart unless-stopped --network host \
    "${mount[@]}" --entrypoint nginx "$IMAGE" -c "$CONF_MOUNT/nginx.conf" >/dev/null
  progress "started the TLS proxy ($IMAGE) on port $PORT"
fi
