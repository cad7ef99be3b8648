# shellcheck shell=bash
# Step: the node is ready for serving: cloud-init (or the host setup) done, the accelerator tool shows
# the expected devices with a driver at least MIN_DRIVER_VERSION, docker hands them to containers, and
# the serving image, built for this host's architecture, is present. Prints the device list (CSV,
# nvidia-smi's shape for every family).
# Env: EXPECTED_GPUS, IMAGE, MIN_DRIVER_VERSION, CLOUD_INIT_TIMEOUT (0: no cloud-init, an owned machine),
#      GPU_TIMEOUT, IMAGE_PULL_TIMEOUT (seconds), ACCEL_COUNT_COMMAND, ACCEL_INVENTORY_COMMAND,
#      ACCEL_DRIVER_VERSION_COMMAND, DRIVER_NAME, DRIVER_HINT, ACCEL_RUNTIME_CHECK, RUNTIME_HINT, DEVICE_ARGS,
#      CONTAINER_PROBE (entrypoint and arguments, one per line), CONTAINER_PROBE_PATTERN.
qwen_diagnostics() {
  echo "qwen: last lines of journalctl -u qwen-prefetch:"
  journalctl -u qwen-prefetch --no-pager -n 15
  echo "qwen: the devices:"
  accelerator_inventory 2>&1 | tail -n 15
  if [ "$CLOUD_INIT_TIMEOUT" -gt 0 ]; then
    echo "qwen: last lines of /var/log/cloud-init-output.log:"
    tail -n 20 /var/log/cloud-init-output.log
  fi
}
if [ "$CLOUD_INIT_TIMEOUT" -gt 0 ]; then
  rc=0
  timeout "$CLOUD_INIT_TIMEOUT" cloud-init status --wait >/dev/null || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || fail "cloud-init did not finish (cloud-init status exit $rc)"
fi
test -f /var/lib/qwen/bootstrap-done || fail "the node bootstrap did not finish (no /var/lib/qwen/bootstrap-done)"

gpus_visible() {
  [ "$(accelerator_count)" -ge "$EXPECTED_GPUS" ]
}
wait_until "$GPU_TIMEOUT" "the host to show $EXPECTED_GPUS $DRIVER_NAME devices" gpus_visible

# The image needs a minimum driver; an older one fails only when vLLM starts, with a device error.
driver=$(bash -c "$ACCEL_DRIVER_VERSION_COMMAND" 2>/dev/null | awk 'NR == 1 { print $1 }' || true)
version_at_least "$driver" "$MIN_DRIVER_VERSION" ||
  fail "the $DRIVER_NAME driver is ${driver:-missing}, but $IMAGE needs $MIN_DRIVER_VERSION or newer $DRIVER_HINT"

bash -c "$ACCEL_RUNTIME_CHECK" || fail "docker cannot hand the devices to containers: $RUNTIME_HINT"
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
# A single-architecture image of another architecture pulls with a warning and fails at its first exec.
case "$(uname -m)" in
  x86_64) host_arch=amd64 ;;
  aarch64) host_arch=arm64 ;;
  *) host_arch=$(uname -m) ;;
esac
image_arch=$(docker image inspect -f '{{ .Architecture }}' "$IMAGE")
[ "$image_arch" = "$host_arch" ] || fail "the image $IMAGE is built for $image_arch and this host is $host_arch; use a tag built for $host_arch"
accelerator_docker_args
mapfile -t probe <<<"$CONTAINER_PROBE"
in_container=$(timeout 300 docker run --rm "${ACCEL_DOCKER_ARGS[@]}" --entrypoint "${probe[0]}" "$IMAGE" "${probe[@]:1}" |
  grep -cE "$CONTAINER_PROBE_PATTERN" || true)
[ "${in_container:-0}" -ge "$EXPECTED_GPUS" ] || fail "a container sees ${in_container:-0} devices, expected $EXPECTED_GPUS"
progress "$EXPECTED_GPUS devices ready"
accelerator_inventory >&3
