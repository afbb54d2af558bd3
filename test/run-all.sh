#!/usr/bin/env bash
# Every test pullnix has, in order of cost: compile, unit + integration (seconds), the Nix files
# (parse, unit contract, options doc freshness), then the real-systemd scenarios (needs root).
# Prints one closing line "N passed, N failed" over all suites.
set -uo pipefail
cd "$(dirname "$0")/.."
REPORTS=$(mktemp -d)
trap 'rm -rf "$REPORTS"' EXIT
status=0

step() { printf '\n==> %s\n' "$*"; }

step "compile (tsc -b)"
npx tsc -b || { echo "compile failed"; exit 1; }

run_suite() { # name, node --test args...
  local name=$1; shift
  step "$name"
  node --test --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$REPORTS/$name.tap" "$@" || status=1
}

run_suite unit 'shared/dist/test/**/*.test.js' 'executor/dist/test/**/*.test.js' 'watcher/dist/test/**/*.test.js' 'test/dist/integration/**/*.test.js'

step "nix files (parse, units contract, options doc)"
if bash nixos/check.sh; then echo "nix checks: 1 passed"; echo "# pass 1" >"$REPORTS/nix.tap"; else status=1; echo "# fail 1" >"$REPORTS/nix.tap"; fi

step "example alerting rules (promtool check rules docs/alerts.rules.yml)"
if command -v promtool >/dev/null && promtool check rules docs/alerts.rules.yml; then echo "# pass 1" >"$REPORTS/rules.tap"; else
  command -v promtool >/dev/null || echo "promtool not found: apt-get install -y prometheus"
  status=1; echo "# fail 1" >"$REPORTS/rules.tap"
fi

if [ "$(id -u)" = 0 ]; then
  run_suite system --test-concurrency=1 'test/dist/system/**/*.test.js'
elif [ "${PULLNIX_SKIP_SYSTEM:-}" = 1 ]; then
  step "system tests skipped: PULLNIX_SKIP_SYSTEM=1 (they need root for systemd-nspawn)"
else
  step "system tests need root (systemd-nspawn); run as root, or set PULLNIX_SKIP_SYSTEM=1 to skip them knowingly"
  status=1
fi

pass=0; fail=0
for f in "$REPORTS"/*.tap; do
  p=$(grep -E '^# pass [0-9]+' "$f" | tail -1 | awk '{print $3}'); pass=$((pass + ${p:-0}))
  n=$(grep -E '^# fail [0-9]+' "$f" | tail -1 | awk '{print $3}'); fail=$((fail + ${n:-0}))
done
echo
echo "$pass passed, $fail failed"
exit $status
