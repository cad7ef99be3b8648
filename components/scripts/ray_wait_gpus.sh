# shellcheck shell=bash
# Step (on the head): wait until every node has joined, i.e. `ray status` shows EXPECTED_GPUS GPUs.
# Prints the final `ray status`.
# Env: EXPECTED_GPUS, RAY_TIMEOUT (seconds).
qwen_diagnostics() {
  echo "qwen: ray status says:"
  docker exec qwen-ray ray status 2>&1 | tail -n 30
}
# The total of the "used/total GPU" line in ray status' usage section.
ray_gpu_total() {
  docker exec qwen-ray ray status 2>/dev/null | awk '$2 == "GPU" { split($1, a, "/"); print int(a[2]); exit }'
}
all_gpus_joined() {
  local total
  total=$(ray_gpu_total)
  [ "${total:-0}" -ge "$EXPECTED_GPUS" ]
}
wait_until "$RAY_TIMEOUT" "ray status to show $EXPECTED_GPUS GPUs" all_gpus_joined
progress "Ray cluster has $EXPECTED_GPUS GPUs"
docker exec qwen-ray ray status >&3
