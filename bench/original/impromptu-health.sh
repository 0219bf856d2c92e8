#!/usr/bin/env bash
# A reconstruction of the skill's impromptu-health.sh (skill 3.3.x), which this repo does
# not ship, written from /work/shared/original-interfaces.md: every line, section, timeout
# (curl --max-time 10), path (the legacy {base}/agent/heartbeat), Status word (uppercase)
# and exit code there. Used as the baseline of bench/health.py and as the reference in
# tests/test_health_dropin.py. Exit: 0 healthy, 2 degraded, 1 unhealthy.
set -euo pipefail

API="${IMPROMPTU_API_URL:-https://impromptusocial.ai/api}"
MANIFEST="$HOME/.impromptu/impromptu.skill.json"
if [ -t 1 ]; then
  RED='\033[0;31m'; GREEN='\033[0;32m'; YELLOW='\033[1;33m'; NC='\033[0m'
else
  RED=''; GREEN=''; YELLOW=''; NC=''
fi
warnings=0
errors=0

section() { printf '\n%s\n%s\n' "$1" "------------------------------------------------------------"; }
ok() { printf '%b[OK]%b %s\n' "$GREEN" "$NC" "$1"; }
warn() { printf '%b[WARN]%b %s\n' "$YELLOW" "$NC" "$1"; warnings=$((warnings + 1)); }
fail() { printf '%b[FAIL]%b %s\n' "$RED" "$NC" "$1"; errors=$((errors + 1)); }
detail() { printf '     %s\n' "$1"; }
mask() {
  local v="$1"
  if [ "${#v}" -gt 16 ]; then echo "${v:0:8}...${v: -4}"; else echo "***masked***"; fi
}
field() {  # field JSON NAME DEFAULT: jq's value, or DEFAULT when null or missing
  local v
  v=$(printf '%s' "$1" | jq -r --arg d "$3" ".$2 // \$d" 2>/dev/null) || v="$3"
  echo "$v"
}

section "Checking dependencies..."
if command -v curl >/dev/null 2>&1; then
  ok "curl installed (v$(curl --version | head -1 | awk '{print $2}'))"
else
  fail "curl not found"
  detail "Install with: brew install curl (macOS) or apt install curl (Linux)"
fi
HAS_JQ=0
if command -v jq >/dev/null 2>&1; then
  HAS_JQ=1
  ok "jq installed (v$(jq --version | sed 's/^jq-//'))"
else
  warn "jq not installed (output will be raw JSON)"
  detail "Install with: brew install jq (macOS) or apt install jq (Linux)"
fi

section "Checking environment..."
if [ -n "${IMPROMPTU_API_KEY:-}" ]; then
  ok "IMPROMPTU_API_KEY configured ($(mask "$IMPROMPTU_API_KEY"))"
else
  fail "IMPROMPTU_API_KEY not set"
  detail "Get your key at: https://impromptusocial.ai/agents/setup"
  detail 'Then: export IMPROMPTU_API_KEY="your-key-here"'
fi
if [ -n "${OPENROUTER_API_KEY:-}" ]; then
  ok "OPENROUTER_API_KEY configured ($(mask "$OPENROUTER_API_KEY"))"
else
  warn "OPENROUTER_API_KEY not set (optional for LLM inference)"
  detail "Get one at: https://openrouter.ai/keys"
fi

section "Checking API connectivity..."
if health=$(curl -fsS --max-time 10 "$API/health" 2>/dev/null); then
  ok "API endpoint reachable ($API)"
  status=unknown
  [ "$HAS_JQ" -eq 1 ] && status=$(field "$health" status unknown)
  if [ "$status" = "ok" ] || [ "$status" = "healthy" ]; then
    ok "API status: $status"
  else
    warn "API status: $status"
  fi
else
  fail "Cannot reach API endpoint ($API)"
  detail "Check your network connection or try again later"
  detail "Status page: https://status.impromptusocial.ai"
fi

section "Checking agent registration..."
if [ -z "${IMPROMPTU_API_KEY:-}" ]; then
  fail "Cannot check registration (no API key)"
elif ! body=$(curl -fsS --max-time 10 -H "Authorization: Bearer $IMPROMPTU_API_KEY" \
    "$API/agent/heartbeat" 2>/dev/null) || printf '%s' "$body" | grep -q '"error"'; then
  fail "Agent not registered or invalid API key"
  detail "Register at: https://impromptusocial.ai/agents/setup"
else
  ok "Agent registered and authenticated"
  ok "Agent ID: $(field "$body" agentId unknown)"
  detail "Name: $(field "$body" name unknown)"
  ok "Current tier: $(field "$body" tier unknown)"
  detail "Reputation: $(field "$body" reputation 0)"
  ok "Token balance: $(field "$body" tokenBalance 0) IMPRMPT"
  detail "Budget balance: $(field "$body" budgetBalance 0)"
  unread=$(field "$body" unreadNotifications 0)
  if [ "$unread" -gt 0 ] 2>/dev/null; then
    warn "$unread unread notifications"
    detail "Check at: https://impromptusocial.ai/notifications"
  else
    ok "No pending notifications"
  fi
fi

section "Checking skill manifest..."
if [ -f "$MANIFEST" ]; then
  ok "Skill manifest cached (v$(jq -r '.version' "$MANIFEST" 2>/dev/null || echo unknown))"
  age=$(( $(date +%s) - $(stat -c %Y "$MANIFEST" 2>/dev/null || stat -f %m "$MANIFEST") ))
  if [ "$age" -gt 86400 ]; then
    warn "Skill manifest is stale ($((age / 3600)) hours old)"
    detail "Run heartbeat.sh to update"
  fi
else
  warn "Skill manifest not cached"
  detail "Run heartbeat.sh to download"
fi

section "Health Check Summary"
echo
if [ "$errors" -eq 0 ] && [ "$warnings" -eq 0 ]; then
  printf 'Status: %bHEALTHY%b\n\n' "$GREEN" "$NC"
  echo "All checks passed. Your agent is ready to participate."
  exit 0
elif [ "$errors" -eq 0 ]; then
  printf 'Status: %bDEGRADED%b\n\n' "$YELLOW" "$NC"
  echo "$warnings warning(s) detected. Your agent is operational but some optional features may be missing."
  exit 2
else
  printf 'Status: %bUNHEALTHY%b\n\n' "$RED" "$NC"
  echo "$errors error(s) detected. Please resolve the issues above before proceeding."
  exit 1
fi
