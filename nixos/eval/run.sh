#!/usr/bin/env bash
# The module evaluation harness: evaluates nixos/module.nix with nixpkgs' lib.evalModules (the
# real NixOS module system) and the stand-ins of eval/nixos-options.nix and eval/pkgs.nix, and
# runs the cases of eval/cases.nix:
#   1. the cases: the failed assertions and warnings each case expects, exactly, and its checks;
#   2. the error cases, each in its own nix process: the evaluation must fail and its output
#      must contain the expected message (which names the option);
#   3. the config files of the cases marked `validate` pass ajv with the daemons' schema;
#   4. docs/options.md (generated without nixpkgs from options.nix) documents exactly the
#      options of the evaluated module, with their descriptions and defaults;
#   5. every ```nix block of README.md and docs/ that configures pullnix (docs-blocks.mjs)
#      evaluates (docs.nix): no failed assertion, no warning, no second tmpfiles rule for a path,
#      and its config.json passes ajv; a block whose marker comment says
#      `# pullnix-docs: must fail: MESSAGE` must fail with MESSAGE instead.
#
# Needs: nix-instantiate (Debian's nix-bin 2.8 is enough), a nixpkgs lib, node + ajv (npm ci).
# Usage:
#   PULLNIX_NIXPKGS_LIB=/path/to/nixpkgs/lib bash nixos/eval/run.sh
#   PULLNIX_MODULE=/path/to/other/module.nix ...   evaluates another module file (say an older
#                                                  checkout's) with the same cases
# nixos/check.sh runs this when PULLNIX_NIXPKGS_LIB is set. Prints "N passed, N failed".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

lib_dir="${PULLNIX_NIXPKGS_LIB:?set PULLNIX_NIXPKGS_LIB to a nixpkgs lib directory (the one holding default.nix, modules.nix, types.nix)}"
[ -f "$lib_dir/modules.nix" ] || { echo "PULLNIX_NIXPKGS_LIB=$lib_dir has no modules.nix: not a nixpkgs lib" >&2; exit 2; }
lib_dir="$(cd "$lib_dir" && pwd)"
module="$(realpath "${PULLNIX_MODULE:-$here/../module.nix}")"

# Single-user nix without a daemon, a build-users group or a binary cache (CI and these machines).
export NIX_CONFIG=$'build-users-group =\nsubstituters =\nexperimental-features = nix-command flakes\nsandbox = false'

pass=0
fail=0
ok() { printf 'ok   %s\n' "$1"; pass=$((pass + 1)); }
bad() { printf 'FAIL %s\n' "$1"; [ -n "${2:-}" ] && printf '     %s\n' "$2"; fail=$((fail + 1)); }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# A checker's exit status counts: one that fails without printing a FAIL line (it crashed, or
# read nothing) is a failure of its own, and one that prints no line at all checked nothing.
checker_rc=0
checker_failed() { checker_rc=$2; printf 'FAIL %s exited %s\n' "$1" "$2" >&2; }
tally() { # FILE CHECKER
  local p f
  p=$(grep -c '^ok' "$1" || true)
  f=$(grep -c '^FAIL' "$1" || true)
  pass=$((pass + p))
  fail=$((fail + f))
  if [ "$checker_rc" -ne 0 ] && [ "$f" -eq 0 ]; then bad "$2" "exited $checker_rc without naming a failure"; fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then bad "$2" "checked nothing (no ok or FAIL line)"; fi
  checker_rc=0
}

# nix-instantiate on cases.nix; $1 = attribute path, the rest are extra flags.
ev() {
  local attr=$1
  shift
  nix-instantiate --eval --strict "$@" "$here/cases.nix" \
    --arg lib "import $lib_dir" --arg module "$module" -A "$attr"
}

# The names in the list $1 of cases.nix, space-separated (case names are plain words).
names() { ev "$1" --json | tr -d '[]"' | tr ',' ' '; }

echo "module: $module"
echo "nixpkgs lib: $lib_dir ($(nix-instantiate --eval --json -E "(import $lib_dir).version" 2>/dev/null || echo '?'))"

printf '\n== cases (lib.evalModules; failed assertions and warnings exact)\n'
if ev results --json >"$tmp/results.json" 2>"$tmp/results.err"; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const [name, failures] of Object.entries(r))
      console.log(failures.length === 0 ? `ok   ${name}` : `FAIL ${name}\n${failures.map((f) => `     ${f}`).join("\n")}`);
  ' "$tmp/results.json" >"$tmp/results.txt" || checker_failed "the cases' reader" $?
  cat "$tmp/results.txt"
  tally "$tmp/results.txt" "the cases' reader"
else
  # One case that throws stops the whole list: evaluate them one by one to name it.
  for name in $(names caseNames); do
    if out="$(ev "results.$name" --json 2>&1)"; then
      if [ "$out" = "[]" ]; then ok "$name"; else bad "$name" "$out"; fi
    else
      bad "$name" "evaluation error: $(printf '%s' "$out" | grep -m1 '^error:' || printf '%s' "$out" | head -c 400)"
    fi
  done
fi

printf '\n== error cases (the evaluation must fail, naming the option)\n'
for name in $(names errorNames); do
  want="$(ev "errors.$name.message" --json | node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")))')"
  if out="$(ev "errors.$name.force" 2>&1)"; then
    bad "$name" "evaluated without an error; expected: $want"
  else
    out="$(printf '%s' "$out" | sed 's/\x1b\[[0-9;]*m//g')"
    if printf '%s' "$out" | grep -qF -- "$want"; then
      ok "$name"
    else
      bad "$name" "failed, but without \"$want\": $(printf '%s' "$out" | grep -m1 '^error' || printf '%s' "$out" | head -c 400)"
    fi
  fi
done

printf '\n== config files of the cases pass ajv (the daemons'"'"' validator)\n'
if ev configs --json >"$tmp/configs.json" 2>"$tmp/configs.err"; then
  (cd "$root" && node "$root/nixos/ajv-validate.mjs" --cases "$tmp/configs.json") >"$tmp/ajv.txt" || checker_failed "nixos/ajv-validate.mjs" $?
  cat "$tmp/ajv.txt"
  tally "$tmp/ajv.txt" "nixos/ajv-validate.mjs"
else
  bad "configs" "$(grep -m1 '^error' "$tmp/configs.err" || head -c 400 "$tmp/configs.err")"
fi

printf '\n== docs/options.md documents the module as evaluated (lib.optionAttrSetToDocList)\n'
if ev optionDocs --json >"$tmp/option-docs.json" 2>"$tmp/option-docs.err"; then
  node "$here/compare-docs.mjs" "$tmp/option-docs.json" "$root/docs/options.md" >"$tmp/docs.txt" || checker_failed "nixos/eval/compare-docs.mjs" $?
  cat "$tmp/docs.txt"
  tally "$tmp/docs.txt" "nixos/eval/compare-docs.mjs"
else
  bad "optionDocs" "$(grep -m1 '^error' "$tmp/option-docs.err" || head -c 400 "$tmp/option-docs.err")"
fi

printf '\n== the ```nix blocks of README.md and docs/ (docs-blocks.mjs, docs.nix)\n'
(cd "$root" && node "$here/docs-blocks.mjs" "$tmp/doc-blocks") >"$tmp/doc-blocks.json"
count="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).length)' "$tmp/doc-blocks.json")"
[ "$count" -gt 0 ] || bad "doc blocks" "no \`\`\`nix block that configures pullnix found in README.md or docs/"
echo '{}' >"$tmp/doc-configs.json"
for i in $(seq 0 $((count - 1))); do
  IFS=$'\t' read -r name file kind must <<<"$(node -e '
    const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[Number(process.argv[2])];
    console.log([b.name, b.file, b.kind, b.mustFail ?? ""].join("\t"));' "$tmp/doc-blocks.json" "$i")"
  if out="$(nix-instantiate --eval --strict --json "$here/docs.nix" --arg lib "import $lib_dir" --arg module "$module" \
    --arg root "$root" --arg file "$file" --argstr kind "$kind" 2>&1)"; then
    if [ -n "$must" ]; then bad "$name" "evaluated, but its marker says it must fail with: $must"; continue; fi
    if msg="$(node -e '
      const r = JSON.parse(process.argv[1]);
      const f = Object.entries(r).flatMap(([n, v]) => v.failures.map((x) => `${n}: ${x}`));
      const configs = JSON.parse(require("fs").readFileSync(process.argv[3], "utf8"));
      for (const [n, v] of Object.entries(r)) if (v.config !== null) configs[`${process.argv[2]} (${n})`] = v.config;
      require("fs").writeFileSync(process.argv[3], JSON.stringify(configs));
      if (f.length) { console.log(f.join("; ")); process.exit(1); }' "$out" "$name" "$tmp/doc-configs.json")"; then
      ok "$name ($kind) evaluates: no failed assertion, no warning, no duplicate tmpfiles rule"
    else
      bad "$name ($kind)" "$msg"
    fi
  else
    out="$(printf '%s' "$out" | sed 's/\x1b\[[0-9;]*m//g')"
    if [ -n "$must" ] && printf '%s' "$out" | grep -qF -- "$must"; then
      ok "$name ($kind) fails as its marker says: $must"
    elif [ -n "$must" ]; then
      bad "$name ($kind)" "failed, but without \"$must\": $(printf '%s' "$out" | grep -m1 '^error' || printf '%s' "$out" | head -c 400)"
    else
      bad "$name ($kind)" "does not evaluate: $(printf '%s' "$out" | grep -m1 '^error' || printf '%s' "$out" | head -c 400)"
    fi
  fi
done
if [ "$(cat "$tmp/doc-configs.json")" != '{}' ]; then
  (cd "$root" && node "$root/nixos/ajv-validate.mjs" --cases "$tmp/doc-configs.json") >"$tmp/doc-ajv.txt" || true
  sed 's/config.json of case /config.json of the block /' "$tmp/doc-ajv.txt"
  pass=$((pass + $(grep -c '^ok' "$tmp/doc-ajv.txt" || true)))
  fail=$((fail + $(grep -c '^FAIL' "$tmp/doc-ajv.txt" || true)))
fi

echo
echo "module evaluation: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
