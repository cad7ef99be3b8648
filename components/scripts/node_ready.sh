# shellcheck shell=bash
# Step: the node is ready for serving: cloud-init done, nvidia-smi shows the expected GPUs,
# docker runs GPU containers, and the serving image is present. Prints nvidia-smi's GPU list (CSV).
# Env: EXPECTED_GPUS, IMAGE, MIN_DRIVER_VERSION, CLOUD_INIT_TIMEOUT, GPU_TIMEOUT, IMAGE_PULL_TIMEOUT (seconds).
qwen_diagnostics() {
  echo "qwen: last lines of journalctl -u qwen-prefetch:"
  journalctl -u qwen-prefetch --no-pager -n 15
  echo "qwen: nvidia-smi says:"
  nvidia-smi 2>&1 | tail -n 15
  echo "qwen: last lines of /var/log/cloud-init-output.log:"
  tail -n 20 /var/log/cloud-init-output.log
}
rc=0
timeout "$CLOUD_INIT_TIMEOUT" cloud-init status --wait >/dev/null || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || fail "cloud-init did not finish (cloud-init status exit $rc)"
test -f /var/lib/qwen/bootstrap-done || fail "the node bootstrap did not finish (no /var/lib/qwen/bootstrap-done)"

gpus_visible() {
  local count
  count=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | grep -c . || true)
  [ "${count:-0}" -ge "$EXPECTED_GPUS" ]
}
wait_until "$GPU_TIMEOUT" "nvidia-smi to show $EXPECTED_GPUS GPUs" gpus_visible

# The image's CUDA needs a minimum driver; an older one fails only when vLLM starts, with a CUDA error.
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | awk 'NR == 1 { print $1 }')
# sort -C: the minimum, then the found version, are in version order (equal counts as newer).
if ! printf '%s\n%s\n' "$MIN_DRIVER_VERSION" "$driver" | sort -V -C; then
  fail "the NVIDIA driver is $driver, but $IMAGE needs $MIN_DRIVER_VERSION or newer (qwen:serving.minDriverVersion); install a newer one (qwen:aliyun.nvidiaDriverPackage, qwen:azure.nvidiaDriver.driverVersion)"
fi

runtimes=$(docker info --format '{{json .Runtimes}}')
[[ "$runtimes" == *nvidia* ]] || fail "docker has no nvidia runtime; the NVIDIA container toolkit is not configured"
# The prefetch service pulls the image (one puller, resumed after reboots); wait for it. A service
# that failed earlier (say, a registry outage) gets one more chance; failing again ends the step.
prefetch_retried=0
image_present() {
  if systemctl is-failed --quiet qwen-prefetch.service; then
    if [ "$prefetch_retried" = 1 ]; then
      fail "the prefetch service failed; see journalctl -u qwen-prefetch (is qwen:serving.image reachable from here?)"
    fi
    progress "the prefetch service had failed: starting it again"
    prefetch_retried=1
    restart_prefetch
  fi
  docker image inspect "$IMAGE" >/dev/null 2>&1
}
wait_until "$IMAGE_PULL_TIMEOUT" "the image $IMAGE (pulled by qwen-prefetch)" image_present
in_container=$(timeout 300 docker run --rm --gpus all --entrypoint nvidia-smi "$IMAGE" -L | grep -c '^GPU' || true)
[ "$in_container" -ge "$EXPECTED_GPUS" ] || fail "a container sees $in_container GPUs, expected $EXPECTED_GPUS"
progress "$EXPECTED_GPUS GPUs ready"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader >&3
