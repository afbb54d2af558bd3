#!/usr/bin/env bash
# Regenerates docs/options.md from nixos/options.nix and shared/schema/config.schema.json.
#   bash nixos/gen-options-doc.sh          write docs/options.md
#   bash nixos/gen-options-doc.sh --check  exit 1 (with a diff) if docs/options.md is stale
# Needs only nix (Debian's nix-bin 2.8 is enough); no nixpkgs, no network.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
doc="$root/docs/options.md"

# Single-user nix without a daemon, a build-users group or a binary cache (CI and these machines).
export NIX_CONFIG=$'build-users-group =\nsubstituters =\nexperimental-features = nix-command flakes\nsandbox = false'

tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
nix eval --raw --file "$here/options-doc.nix" >"$tmp"

case "${1:-}" in
  --check)
    if ! diff -u "$doc" "$tmp"; then
      echo "docs/options.md is stale: run 'bash nixos/gen-options-doc.sh' and commit the result." >&2
      exit 1
    fi
    echo "docs/options.md is up to date."
    ;;
  "")
    mkdir -p "$(dirname "$doc")"
    cp "$tmp" "$doc"
    echo "wrote $doc"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
