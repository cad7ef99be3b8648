# shellcheck shell=bash
# Step (on the head): wait until every node has joined, i.e. `ray status` shows EXPECTED_GPUS devices
# of the accelerator's Ray resource (GPU, or NPU on Ascend). Prints the final `ray status`.
# Env: EXPECTED_GPUS, RAY_RESOURCE, RAY_TIMEOUT (seconds).
qwen_diagnostics() {
  echo "qwen: ray status says:"
  docker exec qwen-ray ray status 2>&1 | tail -n 30
}
# The total of the "used/total GPU" (or NPU) line in ray status' usage section.
ray_gpu_total() {
  docker exec qwen-ray ray status 2>/dev/null | awk -v resource="$RAY_RESOURCE" '$2 == resource { split($1, a, "/"); print int(a[2]); exit }'
}
all_gpus_joined() {
  local total
  total=$(ray_gpu_total)
  [ "${total:-0}" -ge "$EXPECTED_GPUS" ]
}
wait_until "$RAY_TIMEOUT" "ray status to show $EXPECTED_GPUS $RAY_RESOURCE" all_gpus_joined
progress "Ray cluster has $EXPECTED_GPUS $RAY_RESOURCE"
docker exec qwen-ray ray status >&3
