# shellcheck shell=bash
# Step (machines the team owns, instead of cloud-init): check what the serving layer needs from the
# machine, then install the units a cloud node's cloud-init installs (cloudinit.owned_node_files).
# Checks: the tools the steps call (systemd's among them), docker, the accelerator driver (never installed here: a
# missing or old one fails with what was found and what is needed), the devices, docker's access to
# them, free disk for the image and the weights, the private interface. Every problem is reported at
# once. Prints {"privateIp": ..., "arch": ...}.
# PRIVATE_INTERFACE empty: the default route's. FILES_ARCHIVE: base64 of a tar.gz of the files, paths
# relative to /. ENABLE_UNITS: one per line.
# Env: ACCELERATOR, EXPECTED_GPUS, ACCEL_COUNT_COMMAND, ACCEL_DRIVER_VERSION_COMMAND, MIN_DRIVER_VERSION, DRIVER_HINT, ACCEL_RUNTIME_CHECK, RUNTIME_HINT, IMAGE, IMAGE_DISK_GB, MODEL_ROOT, MODEL_DIR, MODEL_REVISION, MODEL_DISK_GB, PRIVATE_INTERFACE, FILES_ARCHIVE, ENABLE_UNITS.
problems=()
problem() {
  problems+=("$*")
}

missing_tools=()
# systemctl: the prefetch runs as a systemd service, as on cloud nodes.
for tool in docker systemctl curl jq timeout base64 tar sha256sum df; do
  command -v "$tool" >/dev/null 2>&1 || missing_tools+=("$tool")
done
[ "${#missing_tools[@]}" -eq 0 ] || problem "missing tools: ${missing_tools[*]} (install them with the system's package manager)"

docker_ok=0
if command -v docker >/dev/null 2>&1; then
  if timeout 60 docker info >/dev/null 2>&1; then
    docker_ok=1
  else
    problem "docker is installed but its daemon does not answer (sudo systemctl enable --now docker)"
  fi
fi

driver=$(bash -c "$ACCEL_DRIVER_VERSION_COMMAND" 2>/dev/null || true)
if [ -z "$driver" ]; then
  problem "no $ACCELERATOR driver found, the image needs $MIN_DRIVER_VERSION or newer $DRIVER_HINT"
elif ! version_at_least "$driver" "$MIN_DRIVER_VERSION"; then
  problem "the $ACCELERATOR driver is $driver, the image needs $MIN_DRIVER_VERSION or newer $DRIVER_HINT"
else
  progress "$ACCELERATOR driver $driver (needs $MIN_DRIVER_VERSION or newer)"
fi

found=$(accelerator_count)
if [ "$found" -lt "$EXPECTED_GPUS" ]; then
  problem "found $found $ACCELERATOR device(s), the stack needs $EXPECTED_GPUS (qwen:owned.hosts[].count)"
fi
if [ "$docker_ok" = 1 ] && ! bash -c "$ACCEL_RUNTIME_CHECK" >/dev/null 2>&1; then
  problem "docker cannot hand $ACCELERATOR devices to containers: $RUNTIME_HINT"
fi

# free_gb PATH: GB available on the filesystem that holds PATH (or would, for a path not made yet).
free_gb() {
  local path=$1
  until [ -e "$path" ]; do path=$(dirname "$path"); done
  df --output=avail -BG "$path" | tail -n 1 | tr -dc '0-9'
}
filesystem_of() {
  local path=$1
  until [ -e "$path" ]; do path=$(dirname "$path"); done
  stat -c %m "$path"
}
if [ "$docker_ok" = 1 ]; then
  image_need=0
  docker image inspect "$IMAGE" >/dev/null 2>&1 || image_need=$IMAGE_DISK_GB
  model_need=0
  jq -e --arg revision "$MODEL_REVISION" '.revision == $revision' "$MODEL_DIR/.qwen-download-complete" >/dev/null 2>&1 ||
    model_need=$MODEL_DISK_GB
  docker_root=$(docker info --format '{{ .DockerRootDir }}')
  if [ "$(filesystem_of "$docker_root")" = "$(filesystem_of "$MODEL_ROOT")" ]; then
    need=$((image_need + model_need))
    have=$(free_gb "$docker_root")
    [ "$have" -ge "$need" ] || problem "$have GB free on $(filesystem_of "$docker_root") (docker's $docker_root and $MODEL_ROOT), needs $need GB: image $image_need + weights $model_need"
  else
    have=$(free_gb "$docker_root")
    [ "$have" -ge "$image_need" ] || problem "$have GB free for docker's $docker_root, the image needs $image_need GB"
    have=$(free_gb "$MODEL_ROOT")
    [ "$have" -ge "$model_need" ] || problem "$have GB free for $MODEL_ROOT, the weights need $model_need GB"
  fi
fi

interface=$PRIVATE_INTERFACE
if [ -z "$interface" ]; then
  interface=$(ip -4 route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
fi
private_ip=127.0.0.1
if [ -n "$interface" ]; then
  private_ip=$(ip -4 -o addr show dev "$interface" 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
  [ -n "$private_ip" ] || problem "network interface $interface has no IPv4 address (qwen:owned.hosts[].privateInterface)"
fi

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'problem: %s\n' "${problems[@]}"
  fail "$QWEN_HOST is not ready for serving (${#problems[@]} problem(s)): $(printf '%s; ' "${problems[@]}")"
fi

# The same files cloud-init writes on a cloud node, installed only when they differ.
install -d -m 755 /etc/qwen /var/lib/qwen /var/log/qwen
staging=/var/lib/qwen/.host-setup-files
rm -rf "$staging"
install -d -m 700 "$staging"
base64 -d <<<"$FILES_ARCHIVE" | tar -xz -C "$staging" --no-same-owner
while IFS= read -r file; do
  target="/${file#"$staging"/}"
  if ! cmp -s "$file" "$target"; then
    install -D -o root -g root -m "$(stat -c %a "$file")" "$file" "$target"
    progress "installed $target"
  fi
done < <(find "$staging" -type f | sort)
rm -rf "$staging"
systemctl daemon-reload
while IFS= read -r unit; do
  [ -n "$unit" ] || continue
  systemctl enable --now "$unit"
done <<<"$ENABLE_UNITS"
touch /var/lib/qwen/bootstrap-done
progress "host ready: $found $ACCELERATOR device(s), driver $driver, private address $private_ip"
jq -cn --arg ip "$private_ip" --arg arch "$(uname -m)" '{privateIp: $ip, arch: $arch}' >&3
