# shellcheck shell=bash
# Step: hand the node its prefetch settings (image, and the model when it lives on local disk).
# Runs as soon as the machine answers SSH, so the pull and download overlap the rest of the
# bootstrap. A change (new image or model) restarts the prefetch on the running machine: the
# machine itself is never replaced for it.
# Env: IMAGE, IMAGE_DISK_GB, PREFETCH_MODEL (0|1), MODEL_ID, MODEL_REVISION, MODEL_ROOT, MODEL_DIR,
#      PRUNE_IMAGES (0|1: may remove other images to make room; never on a machine the team owns).
qwen_diagnostics() {
  echo "qwen: last lines of journalctl -u qwen-prefetch:"
  journalctl -u qwen-prefetch --no-pager -n 20
}
install -d -m 755 /etc/qwen
wanted=$(mktemp /etc/qwen/.prefetch.env.XXXXXX)  # same filesystem: the mv below is atomic
for key in IMAGE IMAGE_DISK_GB PREFETCH_MODEL MODEL_ID MODEL_REVISION MODEL_ROOT MODEL_DIR PRUNE_IMAGES; do
  printf '%s=%q\n' "$key" "${!key}"
done >"$wanted"
if cmp -s "$wanted" /etc/qwen/prefetch.env && ! systemctl is-failed --quiet qwen-prefetch.service; then
  rm -f "$wanted"
  progress "prefetch settings unchanged"
  exit 0
fi
chmod 644 "$wanted"
mv "$wanted" /etc/qwen/prefetch.env
# Before cloud-init has enabled qwen-prefetch.path, the path unit starts the service later by itself.
if systemctl is-enabled --quiet qwen-prefetch.path 2>/dev/null; then
  restart_prefetch
fi
progress "prefetch of $IMAGE started$([ "$PREFETCH_MODEL" = 1 ] && echo " with $MODEL_ID")"
