# shellcheck shell=bash
# Step: check, from inside the region, that the URLs the GPU nodes will need answer at all
# (any HTTP status counts: a registry answers 401 without credentials). Run on a cheap machine
# before the GPU nodes are bought, so a blocked registry or repository costs nothing.
# Env: URLS (one per line), HINT (what to change when one does not answer).
unreachable=()
while IFS= read -r url; do
  [ -n "$url" ] || continue
  code=000
  for _ in 1 2 3; do
    code=$(curl -sS -o /dev/null -m 20 -w '%{http_code}' "$url" || true)
    [ "$code" != 000 ] && break
    sleep 5
  done
  if [ "$code" = 000 ]; then
    unreachable+=("$url")
  else
    progress "reachable: $url (HTTP $code)"
  fi
done <<<"$URLS"
if [ "${#unreachable[@]}" -gt 0 ]; then
  fail "not reachable from this region: ${unreachable[*]}. $HINT"
fi
