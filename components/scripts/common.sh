# shellcheck shell=bash
# Prepended to every remote step (see components/remote.py). It expects QWEN_STEP and
# QWEN_HOST in the environment. Everything the step does goes to its log file; fd 3 is
# the Command's stdout (results only) and fd 4 its stderr (progress and failures).
set -euo pipefail
umask 022
: "${QWEN_STEP:?QWEN_STEP is not set}" "${QWEN_HOST:?QWEN_HOST is not set}"
QWEN_LOG_DIR=/var/log/qwen
mkdir -p "$QWEN_LOG_DIR"
QWEN_STEP_LOG="$QWEN_LOG_DIR/$QWEN_STEP.log"
# The log is appended to by every run; a failure shows only the lines written after this offset.
QWEN_LOG_START=$(stat -c %s "$QWEN_STEP_LOG" 2>/dev/null || echo 0)
exec 3>&1 4>&2 >>"$QWEN_STEP_LOG" 2>&1
echo "=== $(date -u +%FT%TZ) step $QWEN_STEP starts on $QWEN_HOST"

# Steps may define qwen_diagnostics to add context (a container's log, a service's journal).
qwen_on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    {
      echo "qwen: step '$QWEN_STEP' failed on host '$QWEN_HOST' (exit $rc)."
      echo "qwen: this run's last lines of $QWEN_STEP_LOG:"
      tail -c +$((QWEN_LOG_START + 1)) "$QWEN_STEP_LOG" | tail -n 40 || true
      if declare -F qwen_diagnostics >/dev/null; then
        qwen_diagnostics || true
      fi
    } >&4 2>&1
  fi
}
trap qwen_on_exit EXIT

# progress MESSAGE: a line on the Command's stderr, which pulumi shows while the step runs.
progress() {
  echo "$(date -u +%T) [$QWEN_HOST] $*" >&4
  echo "$*"
}

# fail MESSAGE: stop the step with a message.
fail() {
  echo "ERROR: $*"
  exit 1
}

# The API key inside a container: docker shows -e and --env-file values in `docker inspect`
# (Config.Env), so the key is a root-only file mounted read-only, read by a small `sh -c`
# entrypoint that exports it to the one process it execs.
# shellcheck disable=SC2034  # used by the steps (vllm_start.sh, benchmark.sh)
QWEN_API_KEY_FILE=/etc/qwen/secrets/api-key
QWEN_API_KEY_MOUNT=/run/secrets/qwen-api-key

# exec_vllm_with_key VAR: that entrypoint's program, which runs `vllm "$@"` with the key in VAR.
exec_vllm_with_key() {
  # shellcheck disable=SC2016  # expanded by the container's sh, not here
  printf '%s="$(cat %s)" && export %s && exec vllm "$@"' "$1" "$QWEN_API_KEY_MOUNT" "$1"
}

# config_digest VALUE...: a short digest of a container's configuration, kept in its qwen.config label.
config_digest() {
  printf '%s\n' "$@" | sha256sum | cut -c1-16
}

# container_is_current NAME DIGEST: the container runs, with this configuration. Steps keep such a
# container and replace any other, which makes them idempotent.
container_is_current() {
  [ "$(docker inspect -f '{{ index .Config.Labels "qwen.config" }}' "$1" 2>/dev/null || true)" = "$2" ] &&
    [ "$(docker inspect -f '{{ .State.Running }}' "$1" 2>/dev/null || true)" = true ]
}

# restart_prefetch: (re)start the node's prefetch service, clearing a failed state and its start
# limit first, so a fixed cause (a reachable mirror, free disk) takes effect on the next `pulumi up`.
restart_prefetch() {
  systemctl reset-failed qwen-prefetch.service qwen-prefetch.path 2>/dev/null || true
  systemctl start qwen-prefetch.path
  systemctl restart --no-block qwen-prefetch.service
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every 10 s until it succeeds or time runs out.
wait_until() {
  local limit=$1 what=$2 start=$SECONDS next_report=0
  shift 2
  until "$@"; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      fail "timed out after ${limit}s waiting for $what"
    fi
    if [ $((SECONDS - start)) -ge "$next_report" ]; then
      progress "waiting for $what ($((SECONDS - start))s of ${limit}s)"
      next_report=$((next_report + 60))
    fi
    sleep 10
  done
}
