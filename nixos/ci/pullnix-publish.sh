#!/usr/bin/env bash
# pullnix-publish: the CI half of source.mode = "prebuilt" (docs/prebuilt.md). Run it in a
# clean checkout of the branch your machines follow, at the commit to deploy. For every host it
#   1. builds the host's toplevel (nix build <flake>#nixosConfigurations.<host>.config.system.build.toplevel),
#   2. checks that the system records this commit (system.configurationRevision, as printed by
#      its nixos-version --json): the machines refuse a system whose revision is not sourceCommit,
#   3. signs the closure with the cache's secret key (nix store sign -r),
#   4. copies it to the binary cache (nix copy --to),
# then writes one manifest per host ({"toplevel": …, "sourceCommit": …}, by default
# hosts/<host>.json), and commits them in one commit signed with git's configured signing key (the
# builder key: trust.allowedSigners with role = "builder" on the machines). With --push, pushes it.
#
# The cache gets the closures before the manifest commit exists, so a machine that sees the
# manifest finds its paths (if not, it waits for its next poll).
#
# Usage: pullnix-publish.sh --cache STORE-URI --key SECRET-KEY-FILE [--host NAME]... [--flake REF]
#                           [--manifest 'hosts/<host>.json'] [--push [REMOTE]] [--no-check-revision]
#   --cache   where `nix copy --to` writes: file:///srv/cache, s3://bucket?region=…, https://… (nix's store URIs)
#   --key     the secret key of `nix-store --generate-binary-cache-key NAME secret public`
#   --host    a host to publish (repeatable); default: every nixosConfigurations attribute of the flake
#   --flake   the flake (default: . , the checkout)
#   --manifest  the manifest path pattern, as source.manifest on the machines (default hosts/<host>.json)
#   --push    push the manifest commit (to REMOTE, default origin) to the current branch
# Needs: bash, git (with commit signing configured: user.signingkey, gpg.format), nix 2.4 or later
# with the nix-command and flakes features.
set -euo pipefail

cache="" key="" flake="." manifest="hosts/<host>.json" push="" check_revision=1
hosts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache="$2"; shift 2 ;;
    --key) key="$2"; shift 2 ;;
    --host) hosts+=("$2"); shift 2 ;;
    --flake) flake="$2"; shift 2 ;;
    --manifest) manifest="$2"; shift 2 ;;
    --push) if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then push="$2"; shift 2; else push="origin"; shift; fi ;;
    --no-check-revision) check_revision=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pullnix-publish: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$cache" ] || { echo "pullnix-publish: --cache is required" >&2; exit 2; }
[ -n "$key" ] && [ -r "$key" ] || { echo "pullnix-publish: --key must name a readable secret key file" >&2; exit 2; }
case "$manifest" in /*|*..*) echo "pullnix-publish: --manifest must be relative and stay in the repository" >&2; exit 2 ;; esac

nix() { command nix --extra-experimental-features 'nix-command flakes' "$@"; }

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "pullnix-publish: the checkout has uncommitted changes; build a commit, not a work tree" >&2
  exit 1
fi
source_commit="$(git rev-parse HEAD)"
branch="$(git symbolic-ref --short HEAD)"
if [ ${#hosts[@]} -eq 0 ]; then
  mapfile -t hosts < <(nix eval --raw "$flake#nixosConfigurations" --apply 'cs: builtins.concatStringsSep "\n" (builtins.attrNames cs)')
fi
[ ${#hosts[@]} -gt 0 ] || { echo "pullnix-publish: no host to publish" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
manifests=()
for host in "${hosts[@]}"; do
  echo "pullnix-publish: building $host at $source_commit" >&2
  nix build --out-link "$out/$host" "$flake#nixosConfigurations.\"$host\".config.system.build.toplevel"
  toplevel="$(readlink "$out/$host")"
  if [ "$check_revision" = 1 ]; then
    # What the machine checks (source.mode prebuilt, check 4): nixos-version's configurationRevision.
    revision="$("$toplevel/sw/bin/nixos-version" --json | sed -n 's/.*"configurationRevision":"\([0-9a-f]*\)".*/\1/p')"
    if [ "$revision" != "$source_commit" ]; then
      echo "pullnix-publish: $host's system records revision '${revision:-none}', not $source_commit; set system.configurationRevision = self.rev (or self.rev or null) in the flake" >&2
      exit 1
    fi
  fi
  nix store sign -k "$key" -r "$toplevel"
  nix copy --to "$cache" "$toplevel"
  file="${manifest//<host>/$host}"
  mkdir -p "$(dirname "$file")"
  printf '{"toplevel":"%s","sourceCommit":"%s"}\n' "$toplevel" "$source_commit" > "$file"
  manifests+=("$file")
  echo "pullnix-publish: $host → $toplevel" >&2
done

git add -- "${manifests[@]}"
if git diff --cached --quiet; then
  echo "pullnix-publish: the manifests already name these systems; nothing to commit" >&2
else
  git commit --quiet -S -m "pullnix: prebuilt systems of ${source_commit:0:12} for ${hosts[*]}" -m "sourceCommit: $source_commit"
fi
if [ -n "$push" ]; then git push --quiet "$push" "HEAD:refs/heads/$branch"; fi
git rev-parse HEAD
