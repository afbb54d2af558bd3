#!/usr/bin/env bash
# Every test pullnix has, in order of cost: compile, unit + integration (seconds), the Nix files
# (parse, unit contract, options doc freshness, the module under nixpkgs' lib.evalModules), the
# example alerting rules, then the real-systemd scenarios (needs root).
# Closes with one line over all stages, alone on its line (CI reads it):
#   N passed, N failed, N skipped
# Every test the runner knows of counts (test/lib/tap-summary.ts): a skipped suite's tests are a
# skip, not nothing; a timed-out (cancelled) or todo test is a failure; a stage that finds no test
# fails. Under CI=true a skip is a failure naming what was missing (.ci/run installs everything).
# Any stage's failure makes the exit status non-zero.
# PULLNIX_SYSTEM_CONCURRENCY=N runs N scenario files at once (each boots its own machine; default 1).
set -uo pipefail
cd "$(dirname "$0")/.."
REPORTS=$(mktemp -d)
trap 'rm -rf "$REPORTS"' EXIT
status=0
pass=0 fail=0 skip=0
ci=false
[ "${CI:-}" = true ] && ci=true

step() { printf '\n==> %s\n' "$*"; }
count() { # passed failed skipped
  pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + $3))
  [ "$2" -eq 0 ] || status=1
}
# A stage that is not a node:test run: one check, or a skip with its reason (a failure under CI).
skipped() {
  if $ci; then echo "FAILED (CI=true, every tool must be installed): $*"; count 0 1 0; else echo "skipped: $*"; count 0 0 1; fi
}

step "compile (tsc -b)"
npx tsc -b || { echo "compile failed"; echo; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

run_suite() { # name, node --test args...
  local name=$1; shift
  step "$name"
  node --test --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$REPORTS/$name.tap" "$@" || status=1
  local line
  line=$(node test/dist/lib/tap-summary.js $($ci && echo --ci) "$REPORTS/$name.tap" | tee "$REPORTS/$name.summary" | tail -1)
  grep -v '^[0-9]* passed' "$REPORTS/$name.summary" || true
  echo "$name: $line"
  if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
    count "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
  else
    echo "FAILED: no count for $name (its report is missing or unreadable)"; count 0 1 0
  fi
}

run_suite unit 'shared/dist/test/**/*.test.js' 'executor/dist/test/**/*.test.js' 'watcher/dist/test/**/*.test.js' 'test/dist/integration/**/*.test.js'

step "nix files (parse, units contract, options doc, the module under nixpkgs' lib)"
bash nixos/check.sh | tee "$REPORTS/nix.out"
nix_rc=${PIPESTATUS[0]}
nix_line=$(grep -E '^nix checks: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$REPORTS/nix.out" | tail -1)
if [ -z "$nix_line" ]; then
  echo "FAILED: nixos/check.sh exited $nix_rc without its closing count"; count 0 1 0
else
  read -r _ _ p _ f _ s _ <<<"$nix_line"
  count "$p" "$f" 0
  if [ "$s" -gt 0 ]; then
    while IFS= read -r why; do skipped "nix checks: $why"; done < <(sed -n 's/^skipped: //p' "$REPORTS/nix.out")
  fi
  [ "$nix_rc" -eq 0 ] || { [ "$f" -gt 0 ] || { echo "FAILED: nixos/check.sh exited $nix_rc"; count 0 1 0; }; }
fi

step "example alerting rules (promtool check rules docs/alerts.rules.yml)"
if ! command -v promtool >/dev/null; then
  echo "promtool not found: apt-get install -y prometheus"; count 0 1 0
elif promtool check rules docs/alerts.rules.yml; then
  count 1 0 0
else
  count 0 1 0
fi

if [ "$(id -u)" = 0 ]; then
  run_suite system --test-concurrency="${PULLNIX_SYSTEM_CONCURRENCY:-2}" 'test/dist/system/**/*.test.js'
elif [ "${PULLNIX_SKIP_SYSTEM:-}" = 1 ]; then
  step "system tests"
  skipped "the system scenarios: PULLNIX_SKIP_SYSTEM=1 (they need root for systemd-nspawn)"
else
  step "system tests need root (systemd-nspawn); run as root, or set PULLNIX_SKIP_SYSTEM=1 to skip them knowingly"
  count 0 1 0
fi

[ "$fail" -eq 0 ] || status=1
echo
echo "$pass passed, $fail failed, $skip skipped"
exit $status
