# The `services.pullnix` options as plain data (builtins only, no nixpkgs lib).
#
# module.nix turns every entry into a `lib.mkOption`; options-doc.nix turns the same entries
# into docs/options.md. Types and defaults are NOT written here: they are derived from the
# config file's JSON Schema (shared/schema/config.schema.json, through schema.nix), so the
# schema stays the single source of truth. An entry only adds what the schema cannot know.
#
# Layout (RFC 42): `services.pullnix.settings` IS the configuration file. It is a freeform
# submodule of `(pkgs.formats.json { }).type` in which every entry with a `key` below is a
# declared, typed option at `services.pullnix.settings.<key>`; any other key of the file can be
# set there as well (freeform) and is checked against the schema at evaluation time.
#
# Entry fields:
#   key          config-file key (a path into the schema): the option is services.pullnix.settings.<key>
#   loc          the three entries without a key: their option path below services.pullnix
#   kind         "enable" | "package" | "settings" | absent (an ordinary config-file option)
#   description  Markdown; without it the schema's description is used
#   enableName   kind "enable" only: the text for lib.mkEnableOption
#   default      a module-side default where the schema has none or NixOS knows better
#   defaultText  a Nix expression (text) shown instead of a computed default
#   example      an example value (plain data)
#   nixType      "pathOrNull": accept a Nix path too (copied to the store); absent: from the schema
#   itemDescriptions  descriptions of a list's submodule fields
{
  decls = [
    {
      loc = [ "enable" ];
      kind = "enable";
      # lib.mkEnableOption's description is "Whether to enable <enableName>."
      enableName = ''
        pullnix, the pull-based deployment agent. Turning it on runs two services,
        `pullnix-executor` (root: switches the system, verifies, rolls back) and
        `pullnix-watcher` (polls `settings.repository.url`, builds each new commit of
        `settings.repository.branch`), writes `/etc/pullnix/config.json` from `settings` and puts
        `pullnix-ctl` on the system path: from then on this machine deploys every new commit of
        its configuration repository by itself, keeps it if the machine can still reach git (and
        passes `settings.checks`), and rolls back to the previous system if not'';
    }
    {
      loc = [ "package" ];
      kind = "package";
      extraDescription = ''
        It provides `pullnix-executor`, `pullnix-watcher` and `pullnix-ctl`. Where `pkgs` has no
        `pullnix` (the pullnix overlay is not applied), the default is the package built from the
        same source tree as this module with this system's nixpkgs (`nixos/package.nix`).
      '';
    }
    {
      loc = [ "settings" ];
      kind = "settings";
      example = {
        repository.url = "git@github.com:example/machines.git";
        verify.initialBackoffMs = 500;
      };
      description = ''
        The pullnix configuration, written to `/etc/pullnix/config.json` (the file both daemons
        and `pullnix-ctl` read). The keys documented below are typed options; any other key of
        the configuration file (see `shared/schema/config.schema.json`) can be set here too. The
        whole file is checked against that schema when the system is evaluated: an unknown key
        or a wrong value is an evaluation error naming the key. `socketPath`,
        `privateSocketPath`, `stateDir`, `units` and `paths` are fixed by this module's units
        and cannot be set here. The options that were `services.pullnix.<key>` before are
        `services.pullnix.settings.<key>` now; the old names still work, with a warning.
      '';
    }

    # ---- repository --------------------------------------------------------------------------
    {
      key = [ "repository" "url" ];
      example = "git@github.com:example/machines.git";
      description = ''
        Git remote URL of the repository holding this machine's configuration: `ssh://…`,
        scp-like `git@host:path`, `https://…`, `file://…` or a local path. Required.
      '';
    }
    {
      key = [ "repository" "branch" ];
      example = "production";
      description = "Branch to follow. Every new head of this branch is built and deployed.";
    }
    {
      key = [ "repository" "sshKeyFile" ];
      example = "/etc/pullnix/deploy_key";
      description = ''
        Private SSH key used for the repository (a read-only deploy key is enough), as an
        absolute path **string** on the machine. A Nix path value is refused on purpose: it would
        copy the private key into the world-readable Nix store. Needs
        `repository.knownHostsFile` for SSH URLs.
      '';
    }
    {
      key = [ "repository" "knownHostsFile" ];
      nixType = "pathOrNull";
      example = "/etc/pullnix/known_hosts";
      description = ''
        `known_hosts` file pinning the git server's host key; host keys are checked strictly,
        so an unknown or changed key fails the fetch. A string is used as is; a Nix path value
        (for example `./known_hosts`) is copied to the store, which is fine: it is public.
      '';
    }
    {
      key = [ "repository" "allowNonDescendant" ];
    }
    {
      key = [ "repository" "fetchTimeoutSec" ];
    }

    # ---- rings (docs/rings.md) -------------------------------------------------------------
    {
      key = [ "ring" "name" ];
      example = "canary";
      description = ''
        The ring this machine belongs to, as named in the repository's `rings.json`
        (docs/rings.md). With a ring, the machine follows `ring.branch` (default `rings/<name>`)
        instead of `repository.branch`, and `pullnix-promote` moves that branch forward only
        once the ring before it is healthy. `null`: no ring.
      '';
    }
    {
      key = [ "ring" "branch" ];
      example = "rings/canary";
    }
    {
      key = [ "ring" "phases" ];
      example = [
        { afterSec = 0; share = 10; }
        { afterSec = 7200; share = 50; }
        { afterSec = 21600; share = 100; }
      ];
      itemDescriptions = {
        afterSec = "Seconds since this machine first saw its ring's branch at the commit.";
        share = "Percent of the ring's machines allowed to deploy the commit from then on.";
      };
    }

    # ---- build -------------------------------------------------------------------------------
    {
      key = [ "build" "mode" ];
      default = "flake";
      description = ''
        How the repository describes this machine. `flake`: the repository is a flake and the
        system is `nixosConfigurations."<host>".config.system.build.toplevel`. `classic`: the
        file `build.file` is a NixOS configuration built with `<nixpkgs/nixos>` (the watcher
        gets `NIX_PATH` from `nix.nixPath`).
      '';
    }
    {
      key = [ "build" "host" ];
      # module.nix computes this default; the text is what the documentation shows.
      defaultText = ''if config.networking.hostName != "" then config.networking.hostName else null'';
      example = "edge-01";
      description = ''
        Flake mode: the attribute name below `nixosConfigurations`. `null` means the host name
        the machine has at run time. A name with dots (`web1.example.com`) is one attribute:
        the watcher quotes it, as nixos-rebuild does.
      '';
    }
    {
      key = [ "build" "file" ];
      example = "hosts/edge-01/configuration.nix";
      description = "Classic mode: the configuration file, relative to the repository root.";
    }
    {
      key = [ "build" "extraFlags" ];
      example = [
        "--max-jobs"
        "0"
        "--option"
        "substituters"
        "https://cache.example.org"
      ];
      description = ''
        Extra arguments for `nix build` (flake mode) or `nix-build` (classic mode), for example
        to build nothing locally and take everything from a binary cache.
      '';
    }
    {
      key = [ "build" "timeoutSec" ];
    }
    {
      key = [ "build" "keepGcRoots" ];
    }

    # ---- poll --------------------------------------------------------------------------------
    {
      key = [ "poll" "intervalSec" ];
      example = 60;
      description = ''
        Seconds between two asks for the branch head (`git ls-remote`, cheap: nothing is
        fetched while the head is unchanged).
      '';
    }
    {
      key = [ "poll" "jitterSec" ];
    }
    {
      key = [ "poll" "maxBackoffSec" ];
    }

    # ---- activation and verification ---------------------------------------------------------
    {
      key = [ "activation" ];
    }
    {
      key = [ "activationTimeoutSec" ];
    }
    # ---- reboots (docs/executor.md "Reboots") --------------------------------------------------
    {
      key = [ "reboot" "mode" ];
      example = "window";
    }
    {
      key = [ "reboot" "window" "start" ];
      example = "22:00";
      description = ''
        Local time (HH:MM, 24 h) from which pullnix may reboot into a new system that needs it
        (reboot.mode = "window"); until then such a deployment waits ("reboot pending until …").
      '';
    }
    {
      key = [ "reboot" "window" "end" ];
      example = "04:00";
      description = ''
        Local time (HH:MM, 24 h) at which the reboot window closes; before the start, the window
        crosses midnight (22:00 to 04:00). Equal to the start: always open.
      '';
    }
    {
      key = [ "reboot" "bootloader" ];
      # module.nix computes this default; the text is what the documentation shows.
      defaultText = ''if config.boot.loader.systemd-boot.enable then "systemd-boot" else if config.boot.loader.grub.enable then "grub" else "none"'';
    }
    {
      key = [ "verify" "timeoutSec" ];
      description = ''
        How long the git-connectivity check (`git ls-remote` of `repository.url` and
        `repository.branch`, with the same key and known hosts) may keep retrying after an
        activation before the deployment is rolled back to the previous system.
      '';
    }
    {
      key = [ "verify" "attemptTimeoutSec" ];
    }

    {
      key = [ "verify" "failedUnits" "enable" ];
    }
    {
      key = [ "verify" "failedUnits" "settleSec" ];
    }

    # ---- health checks and hooks ---------------------------------------------------------------
    {
      key = [ "checks" ];
      example = {
        nginx = {
          type = "http";
          url = "http://127.0.0.1/healthz";
          bodyPattern = "ok";
        };
        postgres = {
          type = "unit";
          unit = "postgresql.service";
        };
        dns = {
          type = "command";
          argv = [ "/run/current-system/sw/bin/host" "example.org" "127.0.0.1" ];
        };
        ssh = {
          type = "tcp";
          host = "127.0.0.1";
          port = 22;
        };
      };
      description = ''
        Health checks run after every activation, after the git connectivity check (always first)
        and the newly-failed-units check (`verify.failedUnits`), each retried with back-off until
        `verify.timeoutSec`. All must pass, or the deployment is rolled back and the history names
        the check. `type` decides which fields apply: `command` (`argv`, `user`; runs through
        systemd-run as `user`, default a dynamic unprivileged user), `http` (`url`,
        `expectStatus`, `bodyPattern`), `tcp` (`host`, `port`), `unit` (`unit`). A definition
        with an empty `argv`, a URL that does not parse or a `timeoutSec` longer than
        `verify.timeoutSec` is an evaluation error naming the check.
      '';
    }
    {
      key = [ "hooks" "preDeploy" ];
      example = {
        argv = [ "/etc/pullnix/maintenance-window" ];
        timeoutSec = 30;
      };
    }
    {
      key = [ "hooks" "onSuccess" ];
    }
    {
      key = [ "hooks" "onFailure" ];
      example = {
        argv = [ "/etc/pullnix/notify" "--channel" "ops" ];
        user = "notify";
      };
    }

    # ---- metrics ---------------------------------------------------------------------------------
    {
      key = [ "metrics" "textfileDirectory" ];
      example = "/var/lib/prometheus-node-exporter-text-files";
      description = ''
        Directory read by node_exporter's textfile collector: the executor writes
        `pullnix-executor.prom` and the watcher `pullnix-watcher.prom` there (atomically, on
        every change). `null`: no metrics. With the NixOS node exporter:
        `services.prometheus.exporters.node = { enable = true; enabledCollectors = [ "textfile" ]; extraFlags = [ "--collector.textfile.directory=/var/lib/prometheus-node-exporter-text-files" ]; };`
        (see docs/metrics.md).
      '';
    }

    # ---- operators ---------------------------------------------------------------------------
    {
      key = [ "operators" "group" ];
      description = ''
        Group whose members may connect to the executor's socket (`/run/pullnix/executor.sock`)
        with `pullnix-ctl`. The module declares it (`users.groups.<name>`), so a new name is
        created and an existing group (say `wheel`) is used as it is. Membership only opens the
        socket: every request must also be signed with an operator key from `operators.keys`.
      '';
    }
    {
      key = [ "operators" "keys" ];
      example = [
        {
          id = "alice@laptop";
          publicKey = "ed25519:9yq0dZ3H1oZ2q3nQ4cJtS1u8bVv7wX6yZ5aB4cD3eF2";
        }
      ];
      description = ''
        Operator public keys. Create a key with `pullnix-ctl key create` and paste the line
        `pullnix-ctl key show` prints. Operators may use every method (status, history, sync,
        pause, resume, rollback, retry). Root on the machine has its own local operator key.
      '';
      itemDescriptions = {
        id = "A name for the key, shown in the history next to every action it asked for.";
        publicKey = "The public key as printed by `pullnix-ctl key show`: `ed25519:` and 43 base64url characters.";
      };
    }

    # ---- commit trust ------------------------------------------------------------------------
    {
      key = [ "trust" "mode" ];
      example = "all";
      description = ''
        Which commits must carry a good signature from a trusted key before the watcher checks
        out, evaluates or builds anything (see docs/security.md). `off`: none. `head`: the new
        branch head. `all`: every commit reachable from the new head and not from the deployed
        commit (nor from `trust.since`), merges included. A refused range is named in
        `pullnix-ctl status` and the journal (`trust.refused`), and is checked again only when the
        branch moves, on `pullnix-ctl retry`, or when the trusted keys change. Any mode other
        than `off` needs at least one key in `trust.allowedSigners` or `trust.openpgpKeys`.
      '';
    }
    {
      key = [ "trust" "since" ];
      example = "3f2a9c0d5b1e4f6a7c8d9e0f1a2b3c4d5e6f7a8b";
      description = ''
        Mode `all`, a machine with nothing deployed by pullnix yet: the commit the chain of
        signed commits starts after (an anchor you vouch for, e.g. the last commit before signing
        was required). It and its history are not checked. Without it the whole history must be
        signed. Once something is deployed, the deployed commit (kept by the executor) is the
        start as well.
      '';
    }
    {
      key = [ "trust" "allowedSigners" ];
      example = [
        {
          principal = "alice@example.org";
          key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzDE2z/V2SYGvswcsj7bLop/tZMNbwND9+L+pykS7Nn";
          validBefore = "20271231";
        }
      ];
      description = ''
        SSH keys whose commit signatures are trusted (commits signed with `gpg.format = ssh`).
        Written to git's allowed-signers format, every key restricted to the `git` namespace.
        Trusted keys come from this option only, never from the repository: to rotate, push a
        commit signed by a key trusted now that changes this option; once it is deployed, the new
        key is trusted.
      '';
      itemDescriptions = {
        principal = "Who the key belongs to, e.g. an e-mail address (git's allowed-signers principals; comma-separated patterns allowed).";
        key = "The public key, type and base64 (`ssh-ed25519 AAAA…`), without a comment.";
        validAfter = "The key is trusted for commits dated from this time on (`YYYYMMDD[HHMM[SS]][Z]`, without `Z` local time).";
        validBefore = "The key is trusted only before this time, judged both at the commit's date and at the time of the check, so a retired key cannot sign a back-dated commit.";
        role = "`human` (the default): the key signs configuration commits. `builder`: a CI key that signs only the manifest commits of `source.mode = \"prebuilt\"` (docs/prebuilt.md); a builder key's signature on a source commit, or a human key's on a manifest commit, is refused.";
      };
    }
    {
      key = [ "trust" "openpgpKeys" ];
      example = [ "-----BEGIN PGP PUBLIC KEY BLOCK-----\n…\n-----END PGP PUBLIC KEY BLOCK-----\n" ];
      description = ''
        ASCII-armored OpenPGP public keys whose commit signatures are trusted, e.g.
        `[ (builtins.readFile ./keys/alice.asc) ]`. The watcher imports them into a keyring of
        its own (`/var/lib/pullnix/trust/gnupg`), never root's, and trusts exactly them. An
        expired or revoked key's signatures are refused.
      '';
    }
    # ---- where systems come from (docs/prebuilt.md) ------------------------------------------
    {
      key = [ "source" "mode" ];
      example = "prebuilt";
      description = ''
        `build` (the default): the watcher evaluates and builds every new commit on this machine.
        `prebuilt`: CI built the systems; the watcher reads this host's manifest
        (`source.manifest`) in the signed commit, checks it, and fetches the toplevel's closure
        from `source.caches` through the nix-daemon, evaluating and building nothing
        (docs/prebuilt.md). The module then adds the caches to `nix.settings.trusted-substituters`,
        their keys to `nix.settings.trusted-public-keys` and sets
        `nix.settings.narinfo-cache-negative-ttl` to 0 (a default), and asserts the first two.
      '';
    }
    {
      key = [ "source" "manifest" ];
      example = "deploy/<host>.json";
      description = ''
        The manifest's path in the repository; `<host>` is replaced with `build.host` (by default
        the machine's host name). CI writes it as `{ "toplevel": "/nix/store/…", "sourceCommit":
        "<sha>" }` and commits it signed with a builder key.
      '';
    }
    {
      key = [ "source" "caches" ];
      example = [ "https://cache.example.org" ];
      description = ''
        The binary caches the closure is fetched from (any `nix copy --to` target served over
        HTTP(S), S3, a `file://` directory). Needed with `source.mode = "prebuilt"`.
      '';
    }
    {
      key = [ "source" "publicKeys" ];
      example = [ "ci.example.org-1:3tA9XAaB5mZOjr5Tz9i9Kw8FGv2s0l7H7h2c7uNwQxk=" ];
      description = ''
        The public keys whose signatures on the caches' narinfo files are trusted (the public half
        printed by `nix-store --generate-binary-cache-key`). Nix itself refuses a path no such key
        signed. Needed with `source.mode = "prebuilt"`.
      '';
    }
    {
      key = [ "source" "requireSignedSource" ];
      description = ''
        With `source.mode = "prebuilt"`: the manifest's `sourceCommit` must also be in the
        repository, signed by a human key (`trust.allowedSigners` with role `human`), and descend
        from the deployed `sourceCommit`, so an old manifest cannot bring an older system back.
      '';
    }
    {
      key = [ "source" "freeSpaceMarginMiB" ];
    }
    # ---- the vulnerability gate (docs/vulnerabilities.md) -------------------------------------
    {
      key = [ "gates" "vulnerabilities" "enable" ];
      description = ''
        Scan every built system with vulnix (NIST NVD) before it is deployed, and compare it with
        the running system: a system that brings in a vulnerability at or above `minSeverity`
        that the running one does not have is not deployed (see `onNew`). What a commit fixes is
        reported too. Off by default.
      '';
    }
    {
      key = [ "gates" "vulnerabilities" "command" ];
      # module.nix computes this default; the text is what the documentation shows.
      defaultText = ''if config.services.pullnix.settings.gates.vulnerabilities.enable then lib.getExe' pkgs.vulnix "vulnix" else "vulnix"'';
      description = ''
        The vulnix executable. The default is nixpkgs' vulnix when the gate is enabled (a plain
        `"vulnix"` otherwise, so that vulnix is not part of the system when the gate is off).
      '';
    }
    {
      key = [ "gates" "vulnerabilities" "extraFlags" ];
      example = [
        "--whitelist"
        "/etc/vulnix/whitelist.toml"
      ];
      description = ''
        Extra arguments for vulnix, after `--json --closure --cache-dir /var/lib/pullnix/vulnix`:
        a whitelist file (`--whitelist`), an NVD mirror (`--mirror`).
      '';
    }
    {
      key = [ "gates" "vulnerabilities" "minSeverity" ];
      example = 8.5;
    }
    {
      key = [ "gates" "vulnerabilities" "allow" ];
      example = [ "CVE-2023-4863" ];
    }
    {
      key = [ "gates" "vulnerabilities" "onNew" ];
    }
    {
      key = [ "gates" "vulnerabilities" "onError" ];
      description = ''
        What happens when a scan fails or times out (vulnix cannot reach the NVD, crashes, or
        exceeds `timeoutSec`). `allow` (the default): the system is deployed anyway and the
        failure logged as an error, because an unreachable vulnerability database must not block
        the deployment of a security fix. `refuse`: the system is not deployed now; the watcher
        tries again after a back-off.
      '';
    }
    {
      key = [ "gates" "vulnerabilities" "timeoutSec" ];
    }

    # ---- commit statuses at the forge (docs/report.md) ---------------------------------------
    {
      key = [ "report" "enable" ];
    }
    {
      key = [ "report" "forge" ];
    }
    {
      key = [ "report" "apiUrl" ];
      example = "https://git.example.org/api/v1";
    }
    {
      key = [ "report" "repository" ];
      example = "infra/fleet";
    }
    {
      key = [ "report" "tokenFile" ];
      example = "/etc/pullnix/forge-token";
      description = ''
        A file holding the forge token, as an absolute path **string** on the machine (a Nix path
        value is refused on purpose: it would copy the token into the world-readable Nix store).
        Make it readable by the watcher's user alone (`pullnix-watcher`, mode 0400). The watcher
        reads it at each post; the token never reaches the journal, the metrics or `status`.
        GitHub: a token allowed to write commit statuses; Gitea/Forgejo: an access token with
        repository write. Required with `report.enable`.
      '';
    }
    {
      key = [ "report" "targetUrl" ];
    }
    {
      key = [ "report" "haltAfter" ];
      example = 2;
    }
    {
      key = [ "report" "outboxLimit" ];
    }
    {
      key = [ "report" "timeoutSec" ];
    }

    # ---- logging -----------------------------------------------------------------------------
    {
      key = [ "logLevel" ];
      description = ''
        Lowest priority logged to the journal. Every line carries its syslog priority, so
        `journalctl -u pullnix-executor -p warning` works at any level.
      '';
    }
  ];
}
