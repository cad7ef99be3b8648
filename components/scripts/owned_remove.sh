# shellcheck shell=bash
# Delete command of a step on a machine the team owns (pulumi destroy, or before the step is
# replaced): remove the containers and units the step started and the files it installed. Images
# and model weights stay. Idempotent: what is already gone is skipped.
# Env: CONTAINERS, UNITS, PATHS (one per line; any may be empty).
while IFS= read -r container; do
  [ -n "$container" ] || continue
  if docker inspect --type=container "$container" >/dev/null 2>&1; then
    timeout 120 docker rm -f "$container" >/dev/null
    progress "removed container $container"
  fi
done <<<"$CONTAINERS"
reload=0
while IFS= read -r unit; do
  [ -n "$unit" ] || continue
  timeout 120 systemctl disable --now "$unit" 2>/dev/null || true
  systemctl reset-failed "$unit" 2>/dev/null || true
  if [ -e "/etc/systemd/system/$unit" ]; then
    rm -f "/etc/systemd/system/$unit"
    reload=1
    progress "removed unit $unit"
  fi
done <<<"$UNITS"
[ "$reload" = 0 ] || systemctl daemon-reload
while IFS= read -r path; do
  [ -n "$path" ] || continue
  case "$path" in
    /etc/qwen* | /opt/qwen* | /var/lib/qwen/bootstrap-done) ;;
    *) fail "refusing to remove $path: only the program's own files under /etc/qwen, /opt/qwen and the bootstrap marker" ;;
  esac
  if [ -e "$path" ]; then
    rm -rf "$path"
    progress "removed $path"
  fi
done <<<"$PATHS"
