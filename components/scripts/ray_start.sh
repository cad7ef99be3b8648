# shellcheck shell=bash
# Step: run this node's Ray container (head or worker) in the serving image, restarted by docker
# after a reboot or an eviction. Idempotent: a running container with the same settings is kept.
# Env: RAY_ROLE (head|worker), IMAGE, NODE_IP, HEAD_IP, RAY_PORT, GPUS, PRIVATE_INTERFACE, MODEL_ROOT.
name=qwen-ray
qwen_diagnostics() {
  echo "qwen: last lines of the $name container log:"
  docker logs --tail 40 "$name" 2>&1
}
case "$RAY_ROLE" in
  head) ray_cmd="ray start --block --head --port=$RAY_PORT --node-ip-address=$NODE_IP --dashboard-host=127.0.0.1 --num-gpus=$GPUS --disable-usage-stats" ;;
  worker) ray_cmd="ray start --block --address=$HEAD_IP:$RAY_PORT --node-ip-address=$NODE_IP --num-gpus=$GPUS --disable-usage-stats" ;;
  *) fail "RAY_ROLE must be head or worker, got '$RAY_ROLE'" ;;
esac
want=$(config_digest "$IMAGE" "$ray_cmd" "$PRIVATE_INTERFACE" "$MODEL_ROOT")
if container_is_current "$name" "$want"; then
  progress "Ray $RAY_ROLE already running with these settings"
else
  docker rm -f "$name" 2>/dev/null || true
  install -d /var/lib/qwen/ray
  # Host network: Ray, NCCL and Gloo talk over the private interface. IPC host: vLLM's shared
  # memory. /tmp/ray is shared with the vLLM container, whose driver joins this Ray node. rslave:
  # after a reboot docker starts this container before the NAS is mounted; the mount still reaches it.
  docker run -d --name "$name" --label "qwen.config=$want" --restart unless-stopped \
    --network host --ipc host --gpus all \
    -e VLLM_HOST_IP="$NODE_IP" -e NCCL_SOCKET_IFNAME="$PRIVATE_INTERFACE" -e GLOO_SOCKET_IFNAME="$PRIVATE_INTERFACE" \
    -v "$MODEL_ROOT:$MODEL_ROOT:ro,rslave" -v /var/lib/qwen/ray:/tmp/ray \
    --entrypoint /bin/bash "$IMAGE" -c "$ray_cmd"
  progress "started Ray $RAY_ROLE"
fi
if [ "$RAY_ROLE" = head ]; then
  wait_until 300 "the Ray head to answer ray status" docker exec "$name" ray status
else
  # A worker that cannot reach the head exits and is restarted by docker: it must stay up. Docker
  # reports a container between restarts as Running (and Restarting), so compare the restart count.
  restarts=$(docker inspect -f '{{ .RestartCount }}' "$name")
  sleep 30
  [ "$(docker inspect -f '{{ .State.Status }} {{ .RestartCount }}' "$name")" = "running $restarts" ] ||
    fail "the Ray worker container keeps exiting; it could not join the head at $HEAD_IP:$RAY_PORT"
fi
progress "Ray $RAY_ROLE up"
