#!/usr/bin/env bash
# A reconstruction of the skill's impromptu-health.sh, which this repo does not ship (see
# shared/impromptu-platform.md and issue #8): curl of /health and of the heartbeat, jq on
# each field, the key from the environment, any body containing "error" is a failure.
# Used as the baseline of bench/health.py and as the reference verdicts in
# tests/test_health_dropin.py. Exit: 0 healthy, 2 degraded, 1 unhealthy.
API="${IMPROMPTU_API_URL:-https://impromptusocial.ai/api}"
status=0
health=$(curl -fsS --max-time 5 "$API/health" 2>/dev/null)
if [ $? -eq 0 ] && [ "$(echo "$health" | jq -r '.status' 2>/dev/null)" = "ok" ]; then
  echo "[OK] platform: reachable"
else
  echo "[FAIL] platform: unreachable"
  status=1
fi
if [ -z "${IMPROMPTU_API_KEY:-}" ]; then
  echo "[FAIL] platform_key: IMPROMPTU_API_KEY is not set"
  echo "Status: unhealthy"
  exit 1
fi
body=$(curl -fsS --max-time 10 -H "Authorization: Bearer $IMPROMPTU_API_KEY" \
  "$API/v1/agent/heartbeat" 2>/dev/null)
if [ $? -ne 0 ] || [ -z "$body" ] || echo "$body" | grep -qi error; then
  echo "[FAIL] platform_key: heartbeat failed"
  echo "Status: unhealthy"
  exit 1
fi
name=$(echo "$body" | jq -r '.name')
tier=$(echo "$body" | jq -r '.tier')
reputation=$(echo "$body" | jq -r '.reputation')
tokens=$(echo "$body" | jq -r '.tokenBalance')
budget=$(echo "$body" | jq -r '.budgetBalance')
unread=$(echo "$body" | jq -r '.unreadNotifications')
echo "[OK] platform_key: valid (agent $name, tier $tier, reputation $reputation, tokens $tokens, budget $budget)"
if [ "$unread" -gt 0 ]; then
  echo "[WARN] notifications: $unread unread"
  [ "$status" -eq 0 ] && status=2
else
  echo "[OK] notifications: 0 unread"
fi
case "$status" in
  0) echo "Status: healthy" ;;
  2) echo "Status: degraded" ;;
  *) echo "Status: unhealthy" ;;
esac
exit "$status"
