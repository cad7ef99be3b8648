# shellcheck shell=bash
# Step: wait until cloud-init has finished the first boot (packages, docker, container toolkit).
# Env: CLOUD_INIT_TIMEOUT (seconds).
qwen_diagnostics() {
  echo "qwen: last lines of /var/log/cloud-init-output.log:"
  tail -n 40 /var/log/cloud-init-output.log
}
progress "waiting for cloud-init to finish"
rc=0
timeout "$CLOUD_INIT_TIMEOUT" cloud-init status --wait >/dev/null || rc=$?
case "$rc" in
  0 | 2) ;; # 2: done with recoverable errors (cloud-init >= 23.4); the marker below decides
  124) fail "cloud-init did not finish within ${CLOUD_INIT_TIMEOUT}s" ;;
  *) fail "cloud-init failed (cloud-init status exit $rc)" ;;
esac
test -f /var/lib/qwen/bootstrap-done || fail "cloud-init finished but the node bootstrap did not (no /var/lib/qwen/bootstrap-done)"
progress "cloud-init finished"
