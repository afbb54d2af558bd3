#!/usr/bin/env bash
# CI check of everything Nix in this repository that can be checked without nixpkgs:
#   1. every .nix file parses (nix-instantiate --parse);
#   2. the plain parts evaluate and hold their contracts (nixos/check.nix): the unit definitions
#      (restartIfChanged = false on both units, X-StopOnRemoval = false and Restart=always on the
#      executor, ...), the config file the module writes validates against the JSON Schema;
#   3. the rendered unit files carry the contract lines in the right sections;
#   4. docs/options.md is not stale;
#   5. if Node and ajv are installed (npm ci), the sample config files also pass ajv, the
#      validator the daemons use, so schema.nix cannot drift from it unnoticed;
#   6. the module itself, evaluated with nixpkgs' lib.evalModules and stand-ins for NixOS and
#      pkgs (nixos/eval/run.sh), with the lib at PULLNIX_NIXPKGS_LIB, by default the pinned one
#      beside the checkout (../shared/nixpkgs-lib/lib); under CI=true a missing lib is a failure.
# Closes with "nix checks: N passed, N failed, N skipped" (each check once; the harness's own
# checks count one by one); exits non-zero when any failed.
# Needs: bash, nix-instantiate/nix (Debian's nix-bin 2.8), awk, diff. No nixpkgs (but step 6),
# no network.
# Usage: bash nixos/check.sh   (from anywhere)
#        PULLNIX_NIXPKGS_LIB=/path/to/nixpkgs/lib bash nixos/check.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

# Single-user nix without a daemon, a build-users group or a binary cache.
export NIX_CONFIG=$'build-users-group =\nsubstituters =\nexperimental-features = nix-command flakes\nsandbox = false'

pass=0 fail=0 skip=0
step() { printf '\n== %s\n' "$*"; }
good() { pass=$((pass + 1)); }
bad() { printf 'FAIL: %s\n' "$*" >&2; fail=$((fail + 1)); }
skipped() {
  if [ "${CI:-}" = true ]; then bad "$* (CI=true: nothing may be skipped)"; else printf 'skipped: %s\n' "$*"; skip=$((skip + 1)); fi
}

command -v nix-instantiate >/dev/null || { echo "nix-instantiate not found (apt-get install -y nix-bin)" >&2; echo "nix checks: 0 passed, 1 failed, 0 skipped"; exit 1; }

step "parse every .nix file"
count=0 unparsed=0
while IFS= read -r -d '' f; do
  count=$((count + 1))
  if ! out="$(nix-instantiate --parse "$f" 2>&1 >/dev/null)"; then
    printf 'FAIL: %s does not parse:\n%s\n' "$f" "$out" >&2
    unparsed=$((unparsed + 1))
  fi
done < <(find . \( -name node_modules -o -name .git -o -name dist -o -name 'result*' -o -name .lab \) -prune -o -name '*.nix' -type f -print0)
echo "parsed $count files"
if [ "$unparsed" -eq 0 ] && [ "$count" -gt 0 ]; then good; else bad "$unparsed of $count .nix files do not parse"; fi

step "evaluate nixos/check.nix (units, config file, schema validation)"
if nix-instantiate --eval --strict -E "
  let r = import $here/check.nix; in
  if r.failures == [ ] then \"all checks passed\"
  else throw (\"\n  - \" + builtins.concatStringsSep \"\n  - \" r.failures)
"; then
  good
else
  bad "nixos/check.nix reported failures (above)"
fi

step "rendered unit files carry the contract lines"
render() {
  nix eval --impure --raw --expr "(import $here/render-units.nix {
    executorExec = \"/opt/pullnix/bin/pullnix-executor\";
    watcherExec = \"/opt/pullnix/bin/pullnix-watcher\";
    configFile = \"/etc/pullnix/config.json\";
    path = [ \"/nix/var/nix/profiles/default\" ];
  }).\"$1\""
}
# has_line UNIT_TEXT SECTION LINE: LINE appears inside [SECTION].
has_line() {
  printf '%s\n' "$1" | awk -v sec="[$2]" -v want="$3" '
    /^\[.*\]$/ { cur = $0; next }
    cur == sec && $0 == want { found = 1 }
    END { exit found ? 0 : 1 }'
}
executor="$(render pullnix-executor.service)" || bad "render-units.nix does not evaluate"
watcher="$(render pullnix-watcher.service)" || bad "render-units.nix does not evaluate"
for check in \
  "executor|Service|X-RestartIfChanged=false" \
  "executor|Unit|X-StopOnRemoval=false" \
  "executor|Service|Restart=always" \
  "executor|Service|RuntimeDirectory=pullnix" \
  "executor|Service|RuntimeDirectory=pullnix-watcher" \
  "watcher|Service|User=pullnix-watcher" \
  "watcher|Service|ProtectSystem=strict" \
  "watcher|Service|CapabilityBoundingSet=" \
  "executor|Service|ExecStart=/opt/pullnix/bin/pullnix-executor --config /etc/pullnix/config.json" \
  "executor|Install|WantedBy=multi-user.target" \
  "watcher|Service|X-RestartIfChanged=false" \
  "watcher|Service|Restart=always" \
  "watcher|Service|ExecStart=/opt/pullnix/bin/pullnix-watcher --config /etc/pullnix/config.json" \
  "watcher|Install|WantedBy=multi-user.target"; do
  IFS='|' read -r unit section line <<<"$check"
  text="$executor"
  [ "$unit" = watcher ] && text="$watcher"
  if has_line "$text" "$section" "$line"; then
    echo "ok   pullnix-$unit.service [$section] $line"
    good
  else
    bad "pullnix-$unit.service lacks '$line' in [$section]"
  fi
done

step "docs/options.md is up to date"
if bash "$here/gen-options-doc.sh" --check; then good; else bad "docs/options.md is stale"; fi

step "sample config files pass ajv (the daemons' validator)"
if command -v node >/dev/null && [ -d "$root/node_modules/ajv" ]; then
  tmp="$(mktemp -d)"
  nix eval --json --file "$here/check.nix" sampleConfig >"$tmp/sample.json"
  nix eval --json --file "$here/check.nix" fullConfig >"$tmp/full.json"
  if (cd "$root" && node "$here/ajv-validate.mjs" "$tmp/sample.json" "$tmp/full.json"); then
    good
  else
    bad "a config file the module writes is rejected by ajv"
  fi
  rm -rf "$tmp"
else
  skipped "the ajv check of the sample config files: node or node_modules/ajv not present (run npm ci first)"
fi

step "the module, evaluated with nixpkgs' lib (nixos/eval/run.sh)"
pinned="$root/../shared/nixpkgs-lib/lib"
if [ -z "${PULLNIX_NIXPKGS_LIB:-}" ] && [ -f "$pinned/modules.nix" ]; then
  PULLNIX_NIXPKGS_LIB="$(cd "$pinned" && pwd)"
  export PULLNIX_NIXPKGS_LIB
fi
if [ -n "${PULLNIX_NIXPKGS_LIB:-}" ]; then
  out="$(mktemp)"
  rc=0
  bash "$here/eval/run.sh" >"$out" 2>&1 || rc=$?
  cat "$out"
  line="$(grep -E '^module evaluation: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)"
  rm -f "$out"
  if [ -z "$line" ]; then
    bad "nixos/eval/run.sh exited $rc without its count"
  else
    read -r _ _ p _ f _ <<<"$line"
    pass=$((pass + p))
    fail=$((fail + f))
    [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || bad "nixos/eval/run.sh exited $rc with no failed check"
  fi
else
  skipped "the module under lib.evalModules: no nixpkgs lib (PULLNIX_NIXPKGS_LIB unset and none at $pinned; docs/nixos.md, \"Evaluating the module\")"
fi

echo
echo "nix checks: $pass passed, $fail failed, $skip skipped"
if [ "$fail" -ne 0 ]; then
  printf 'nixos/check.sh: FAILED\n' >&2
  exit 1
fi
printf 'nixos/check.sh: all Nix checks passed\n'
