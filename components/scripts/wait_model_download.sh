# shellcheck shell=bash
# Step (on the downloader): wait until the model download service has fetched and verified every
# file into the shared store. Prints the completion marker (a JSON summary).
# Env: MODEL_DIR, MODEL_REVISION, DOWNLOAD_TIMEOUT (seconds).
unit=qwen-model-download.service
qwen_diagnostics() {
  echo "qwen: last lines of journalctl -u $unit:"
  journalctl -u "$unit" --no-pager -n 40
}
rc=0
timeout 1800 cloud-init status --wait >/dev/null || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 2 ] || fail "cloud-init did not finish (cloud-init status exit $rc)"
downloaded() {
  if systemctl is-failed --quiet "$unit"; then
    fail "$unit failed"
  fi
  jq -e --arg revision "$MODEL_REVISION" '.revision == $revision' "$MODEL_DIR/.qwen-download-complete" >/dev/null 2>&1
}
report_size() {
  progress "downloaded so far: $(du -sh "$MODEL_DIR" 2>/dev/null | cut -f1) ($(systemctl show -p NRestarts --value "$unit") restart(s) of $unit)"
}
start=$SECONDS
until downloaded; do
  [ $((SECONDS - start)) -lt "$DOWNLOAD_TIMEOUT" ] || fail "the download did not finish within ${DOWNLOAD_TIMEOUT}s"
  report_size
  sleep 60
done
progress "model verified in $MODEL_DIR"
cat "$MODEL_DIR/.qwen-download-complete" >&3
