# The pullnix package: pullnix-executor, pullnix-watcher, pullnix-ctl and pullnix-promote, built from this
# repository with buildNpmPackage and Node 22.
#
# Dependencies, offline, with no aggregate hash to maintain:
#   The usual buildNpmPackage route needs `npmDepsHash`, computed by nixpkgs' prefetch-npm-deps;
#   we cannot compute it here, and a made-up value would only fail later. nixpkgs' importNpmLock
#   avoids the aggregate hash, but it does not handle this repository's lockfile: npm workspaces
#   (the `link` entries of shared/executor/watcher/test lose their link and get copied; workspace
#   support is an open nixpkgs PR, #522939) and entries without a `resolved` URL (this lockfile was
#   written with npm's omit-lockfile-registry-resolved).
#   So this file does the same thing importNpmLock does, in a few lines: every registry package in
#   package-lock.json is one `fetchurl` pinned by the lockfile's own `integrity` (sha512), its
#   `resolved` becomes `file:<store path>`, workspace links stay as they are, and `npm ci
#   --offline` installs from that lockfile. Updating a dependency needs nothing but
#   package-lock.json. (Checked on a Debian machine with npm 11: `npm ci --offline
#   --ignore-scripts` from such a lockfile, with an empty cache, installs all 78 packages and
#   links the four workspaces.)
#
# No install scripts: the root devDependency `node` (used on developer machines to run npm
#   scripts on Node 22) downloads a Node binary in its install script, which cannot work in the
#   sandbox and is not needed (nixpkgs' nodejs_22 is used). `npm ci --ignore-scripts` runs no
#   dependency's scripts at all; none of the runtime dependencies needs one.
#
# Tests are not run here: the unit tests are run by CI (`npm test`), and the system tests need
#   root and systemd.
{
  lib,
  buildNpmPackage,
  nodejs_22,
  fetchurl,
  writeText,
  makeSetupHook,
  makeWrapper,
}:
let
  # Source as an allow-list (source.nix): only what `tsc -b shared executor watcher` and
  # `npm ci` read.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = import ./source.nix { inherit lib; };
  };

  packageJSON = lib.importJSON ../package.json;

  # V8 flags of the two long-running, mostly idle daemons, chosen by measurement (docs/decisions.md
  # D16, docs/benchmarks.md §3); the benchmarks start the daemons with the same file.
  nodeFlags = lib.importJSON ./node-flags.json;
  lock = lib.importJSON ../package-lock.json;

  # "node_modules/a/node_modules/@s/b" -> "@s/b"
  packageName = key: lib.last (lib.splitString "node_modules/" key);

  # The registry's tarball URL for name@version (what npm itself computes when `resolved` is
  # omitted): https://registry.npmjs.org/@s/b/-/b-1.0.0.tgz
  registryUrl =
    name: version: "https://registry.npmjs.org/${name}/-/${lib.last (lib.splitString "/" name)}-${version}.tgz";

  isRegistryPackage =
    key: entry:
    lib.hasPrefix "node_modules/" key && !(entry.link or false) && entry ? integrity && entry ? version;

  offlineLock = lock // {
    packages = lib.mapAttrs (
      key: entry:
      if isRegistryPackage key entry then
        entry
        // {
          resolved = "file:${
            fetchurl {
              url = entry.resolved or (registryUrl (packageName key) entry.version);
              hash = entry.integrity;
            }
          }";
        }
      else
        entry
    ) lock.packages;
  };

  # Replaces buildNpmPackage's npmConfigHook (which expects prefetch-npm-deps' cache).
  offlineNpmConfigHook = makeSetupHook { name = "pullnix-offline-npm-config-hook"; } (
    writeText "pullnix-offline-npm-config-hook.sh" ''
      pullnixOfflineNpmConfigHook() {
        echo "Executing pullnixOfflineNpmConfigHook"
        export HOME="$TMPDIR"
        export npm_config_cache="$TMPDIR/npm-cache"
        cp --no-preserve=mode "$npmDeps" package-lock.json
        npm ci --offline --ignore-scripts --no-audit --no-fund --loglevel=warn
        patchShebangs node_modules
        echo "Finished pullnixOfflineNpmConfigHook"
      }
      postPatchHooks+=(pullnixOfflineNpmConfigHook)
    ''
  );
in
buildNpmPackage {
  pname = "pullnix";
  inherit (packageJSON) version;
  inherit src;
  nodejs = nodejs_22;

  # The lockfile with store paths: npm ci installs from it (see the hook above).
  npmDeps = writeText "pullnix-package-lock.json" (builtins.toJSON offlineLock);
  npmConfigHook = offlineNpmConfigHook;

  nativeBuildInputs = [ makeWrapper ];

  # `npm run build` is `tsc -b`; naming the three projects leaves out the test project.
  buildPhase = ''
    runHook preBuild
    npm run build -- shared executor watcher
    runHook postBuild
  '';

  dontNpmInstall = true;
  installPhase = ''
    runHook preInstall

    # Drop the build-only dependencies (typescript, @types/node, node) and the test workspace.
    npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=warn
    rm -f node_modules/@pullnix/test

    lib="$out/lib/pullnix"
    mkdir -p "$lib" "$out/bin"
    cp -r package.json node_modules "$lib/"
    for ws in shared executor watcher; do
      mkdir -p "$lib/$ws"
      cp -r "$ws/package.json" "$ws/dist" "$lib/$ws/"
    done
    cp -r shared/schema "$lib/shared/"

    makeWrapper ${lib.getExe nodejs_22} "$out/bin/pullnix-executor" \
      --add-flags "${lib.escapeShellArgs nodeFlags.executor} $lib/executor/dist/src/main.js"
    makeWrapper ${lib.getExe nodejs_22} "$out/bin/pullnix-watcher" \
      --add-flags "${lib.escapeShellArgs nodeFlags.watcher} $lib/watcher/dist/src/main.js"
    makeWrapper ${lib.getExe nodejs_22} "$out/bin/pullnix-ctl" \
      --add-flags "$lib/executor/dist/src/ctl/main.js"
    # Runs in CI or by hand, not on the hosts (docs/rings.md); it needs git and ssh on PATH there.
    makeWrapper ${lib.getExe nodejs_22} "$out/bin/pullnix-promote" \
      --add-flags "$lib/watcher/dist/src/promote/main.js"

    runHook postInstall
  '';

  # Fail the build, not the first deployment, if an entry point is missing.
  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    for f in executor/dist/src/main.js watcher/dist/src/main.js executor/dist/src/ctl/main.js watcher/dist/src/promote/main.js; do
      test -f "$out/lib/pullnix/$f" || { echo "missing entry point $f"; exit 1; }
    done
    runHook postInstallCheck
  '';

  passthru = {
    inherit offlineLock;
  };

  meta = {
    description = "Pull-based deployment agent for NixOS: a machine deploys itself from git, verifies, and rolls back";
    license = lib.licenses.mit;
    mainProgram = "pullnix-ctl";
    platforms = lib.platforms.linux;
  };
}
