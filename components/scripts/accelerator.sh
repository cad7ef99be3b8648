# shellcheck shell=bash
# Prepended to every remote step after common.sh (see components/remote.py): the accelerator seam.
# A family's catalog entry (components/accelerators.py) reaches a step as env; these helpers turn it
# into docker arguments and commands, so one script serves NVIDIA GPUs and Ascend NPUs alike.
# Env (only where a step calls the helper): DEVICE_ARGS and CONTAINER_ENV (one item per line),
# ACCEL_COUNT_COMMAND, ACCEL_INVENTORY_COMMAND.

# accelerator_docker_args: fill the array ACCEL_DOCKER_ARGS with the `docker run` arguments that
# hand this host's devices to a container, and the container env (-e K=V) they need.
accelerator_docker_args() {
  local line
  ACCEL_DOCKER_ARGS=()
  while IFS= read -r line; do
    [ -z "$line" ] || ACCEL_DOCKER_ARGS+=("$line")
  done <<<"${DEVICE_ARGS:?DEVICE_ARGS is not set}"
  while IFS= read -r line; do
    [ -z "$line" ] || ACCEL_DOCKER_ARGS+=(-e "$line")
  done <<<"${CONTAINER_ENV:-}"
}

# accelerator_count: how many devices this host shows (0 when the tool fails, e.g. no driver).
accelerator_count() {
  local count
  count=$(bash -c "${ACCEL_COUNT_COMMAND:?ACCEL_COUNT_COMMAND is not set}" 2>/dev/null || true)
  echo "${count:-0}"
}

# accelerator_inventory: one CSV row per device (index, name, "N MiB", driver), the shape of
# `nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader`.
accelerator_inventory() {
  bash -c "${ACCEL_INVENTORY_COMMAND:?ACCEL_INVENTORY_COMMAND is not set}"
}

# version_at_least FOUND NEEDED: the numeric prefix of FOUND (570.172.08, 24.1.rc3 -> 24.1) is at
# least NEEDED, compared field by field.
version_at_least() {
  local found
  found=$(grep -oE '^[0-9]+(\.[0-9]+)*' <<<"$1" || true)
  [ -n "$found" ] && [ "$(printf '%s\n%s\n' "$2" "$found" | sort -V | head -n 1)" = "$2" ]
}
