# The cases of the module evaluation harness (nixos/eval/run.sh runs them). Each case evaluates
# nixos/module.nix with nixpkgs' lib.evalModules and the stand-ins (see eval.nix).
#
#   cases.<name> = {
#     modules      the case's NixOS configuration (a list of modules);
#     pkgsExtra    attributes added to the stand-in pkgs (optional);
#     assertions   substrings, one per failed assertion expected: EXACTLY that many assertions
#                  fail, and each substring is in one of their messages (default [ ]: none fails);
#     warnings     the same for warnings (default [ ]: no warning);
#     renamed      old option groups the case uses: their rename warnings are expected too;
#     expect       r: a list of failure texts, given the evalModules result r (optional);
#     validate     true: the case's /etc/pullnix/config.json is also checked with ajv (run.sh).
#   };
#   errors.<name> = { modules; pkgsExtra; message; }: evaluating the system must FAIL, and the
#     error output must contain `message` (run.sh evaluates each one in its own nix process).
#
# Result: { caseNames = [ ... ]; results = { <case> = [ failures ]; }; configs = { <case> = <config.json>; };
#           optionDocs = [ { name; description; default; } ]; errorNames = [ ... ]; errors = { <name> = { message; force = <forces the system>; }; }; }
{
  lib,
  module ? ../module.nix,
}:
let
  inherit (import ./eval.nix { inherit lib module; }) eval;
  inherit (import ./pkgs.nix { inherit lib; }) fakePackage;
  inherit (lib) hasInfix;

  # ---- helpers -------------------------------------------------------------------------------
  repo = {
    url = "git@github.com:example/machines.git";
    sshKeyFile = "/etc/pullnix/deploy_key";
    knownHostsFile = "/etc/pullnix/known_hosts";
  };
  machine = {
    networking.hostName = "edge-01";
  };
  # pullnix enabled, the minimal repository settings, recursively updated with `settings`.
  pullnix = settings: {
    services.pullnix = {
      enable = true;
      settings = lib.recursiveUpdate { repository = repo; } settings;
    };
  };
  withSettings = settings: [
    machine
    (pullnix settings)
  ];
  # The same with the option names used before settings held the typed options
  # (services.pullnix.repository.url, ...): `old` is merged into services.pullnix.
  withOldNames = old: [
    machine
    { services.pullnix = lib.recursiveUpdate { enable = true; repository = repo; } old; }
  ];
  # The warning mkRenamedOptionModule gives for each old group name used.
  renamedWarning = group: "The option `services.pullnix.${group}' defined in";

  failedAssertions = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  configOf = r: builtins.fromJSON (builtins.unsafeDiscardStringContext r.config.environment.etc."pullnix/config.json".source.text);
  pathEntries = r: unit: lib.splitString ":" r.config.systemd.services.${unit}.environment.PATH;
  count = x: xs: lib.count (y: y == x) xs;

  check = cond: msg: if cond then [ ] else [ msg ];

  ciKey = "ci.example.org-1:3tA9XAaB5mZOjr5Tz9i9Kw8FGv2s0l7H7h2c7uNwQxk=";
  prebuiltSettings = {
    source = {
      mode = "prebuilt";
      caches = [ "http://cache.example.org" ];
      publicKeys = [ ciKey ];
    };
    trust = {
      mode = "head";
      allowedSigners = [
        {
          principal = "ci@example.org";
          key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzDE2z/V2SYGvswcsj7bLop/tZMNbwND9+L+pykS7Nn";
          role = "builder";
        }
      ];
    };
  };

  # Exactly length(wanted) messages, each wanted substring in one of them.
  matchAll =
    what: wanted: got:
    check (builtins.length got == builtins.length wanted && builtins.all (w: builtins.any (m: hasInfix w m) got) wanted)
      "expected ${toString (builtins.length wanted)} ${what} containing ${builtins.toJSON wanted}, got ${builtins.toJSON got}";

  forceSystem =
    r:
    builtins.deepSeq [
      r.config.environment.etc."pullnix/config.json".source.text
      (failedAssertions r.config)
      r.config.warnings
      (lib.mapAttrs (_: s: s.environment) r.config.systemd.services)
    ] true;

  # ---- the cases -----------------------------------------------------------------------------
  cases = {
    minimal = {
      modules = withSettings { };
      validate = true;
      expect =
        r:
        let
          c = r.config;
          j = configOf r;
          ex = c.systemd.services.pullnix-executor;
          wa = c.systemd.services.pullnix-watcher;
        in
        check (ex.restartIfChanged == false && wa.restartIfChanged == false) "restartIfChanged must be false on both units"
        ++ check (ex.unitConfig.X-StopOnRemoval == false) "executor: X-StopOnRemoval must be false"
        ++ check (ex.serviceConfig.Restart == "always" && wa.serviceConfig.Restart == "always") "Restart=always on both units"
        ++ check (
          ex.serviceConfig.ExecStart == "${fakePackage "pullnix-from-package-nix"}/bin/pullnix-executor --config ${fakePackage "pullnix-config.json"}"
        ) "executor ExecStart is <package>/bin/pullnix-executor --config <store config>, got ${ex.serviceConfig.ExecStart}"
        ++ check (c.users.groups ? pullnix) "the operator group pullnix is created"
        ++ check (j.build.host == "edge-01") "settings.build.host defaults to networking.hostName"
        ++ check (j.repository.knownHostsFile == "/etc/pullnix/known_hosts") "knownHostsFile written as given"
        ++ check (j.verify.timeoutSec == 120 && j.poll.intervalSec == 300 && j.operators.group == "pullnix") "the typed options' defaults are written"
        ++ check (!(j ? _module) && !(j.repository ? _module)) "no module-system attribute in the file"
        ++ check (builtins.elem c.services.pullnix.package c.environment.systemPackages) "the package is on the system path";
    };

    # settings is a freeform submodule: keys without an option of their own are written as
    # given, next to the typed options' values.
    freeform-key = {
      modules = withSettings { verify.initialBackoffMs = 500; };
      validate = true;
      expect =
        r:
        let
          j = configOf r;
        in
        check (j.verify.initialBackoffMs == 500) "settings.verify.initialBackoffMs (freeform) is written"
        ++ check (j.verify.timeoutSec == 120) "the typed verify.timeoutSec keeps its default next to a freeform key";
    };

    # The option declaration itself, as nixpkgs' documentation tools see it.
    option-declarations = {
      modules = withSettings { };
      expect =
        r:
        let
          o = r.options.services.pullnix;
          sub = o.settings.type.getSubOptions o.settings.loc;
        in
        check (o.settings.type.description == "open submodule of (JSON value)") "settings is an open submodule of (pkgs.formats.json { }).type, got \"${o.settings.type.description}\""
        ++ check (sub.repository.url.type.name == "str" && lib.hasPrefix "strMatching" sub.operators.group.type.name && sub.repository.url.loc == [ "services" "pullnix" "settings" "repository" "url" ]) "the typed options are declared inside settings (settings.repository.url, settings.operators.group)"
        ++ check (sub.verify.timeoutSec.default == 120) "typed options inside settings carry the schema's defaults"
        ++ check (o.enable.type.name == "bool" && o.enable.default == false) "enable is an mkEnableOption (bool, default false)"
        ++ check (lib.hasPrefix "Whether to enable pullnix" o.enable.description) "enable's description is mkEnableOption's"
        ++ check (
          hasInfix "pullnix-executor" o.enable.description
          && hasInfix "pullnix-watcher" o.enable.description
          && hasInfix "/etc/pullnix/config.json" o.enable.description
        ) "enable's description says what turning it on does (the two services, the config file)"
        ++ check (lib.hasPrefix "The pullnix package to use." o.package.description) "package is an mkPackageOption (its description), got ${builtins.toJSON o.package.description}"
        ++ check (o.package.defaultText.text or null == "pkgs.pullnix") "package's default is shown as pkgs.pullnix";
    };

    # mkPackageOption: pkgs.pullnix when the overlay provides it ...
    package-from-overlay = {
      modules = withSettings { };
      pkgsExtra.pullnix = fakePackage "pullnix-from-overlay";
      expect = r: check (r.config.services.pullnix.package.name == "pullnix-from-overlay") "package: pkgs.pullnix is used when present";
    };
    # ... else the package built from this tree (nixos/package.nix).
    package-without-overlay = {
      modules = withSettings { };
      expect = r: check (r.config.services.pullnix.package.name == "pullnix-from-package-nix") "package: nixos/package.nix is used without pkgs.pullnix";
    };

    # The watcher's own user (D20): created, named in the config file, the unit runs as it.
    watcher-user = {
      modules = withSettings { };
      expect =
        r:
        check (r.config.users.users ? pullnix-watcher && r.config.users.users.pullnix-watcher.isSystemUser or false) "watcher: the system user pullnix-watcher is created"
        ++ check (r.config.users.groups ? pullnix-watcher) "watcher: its group is created"
        ++ check ((configOf r).watcher.user or null == "pullnix-watcher") "watcher: config.json names pullnix-watcher"
        ++ check (r.config.systemd.services.pullnix-watcher.serviceConfig.User or null == "pullnix-watcher") "watcher: the unit runs as pullnix-watcher";
    };
    # reboot.bootloader follows the machine's bootloader (issue 12); grub-reboot is on PATH only for grub + window.
    reboot-bootloader-systemd-boot = {
      modules = withSettings { reboot.mode = "window"; } ++ [ { boot.loader.systemd-boot.enable = true; boot.loader.grub.enable = false; } ];
      expect =
        r:
        check ((configOf r).reboot.bootloader == "systemd-boot") "reboot: bootloader systemd-boot when systemd-boot is enabled"
        ++ check (!(lib.any (e: hasInfix "grub" e) (pathEntries r "pullnix-executor"))) "reboot: no grub on PATH with systemd-boot";
    };
    reboot-bootloader-grub = {
      modules = withSettings { reboot.mode = "window"; };
      expect =
        r:
        check ((configOf r).reboot.bootloader == "grub") "reboot: bootloader grub by NixOS's default"
        ++ check (lib.any (e: hasInfix "grub" e) (pathEntries r "pullnix-executor")) "reboot: pkgs.grub2 (grub-reboot, grub-editenv) on the executor's PATH";
    };

    # Issue 22: what breaks a trial boot on the machine's bootloader is refused at build time, with the reason and the fix.
    # docs/nixos.md "Reboots", as written there.
    docs-reboots-example = {
      modules = withSettings { } ++ [
        {
          services.pullnix.settings.reboot = {
            mode = "window";
            window = {
              start = "01:00";
              end = "05:00";
            };
          };
        }
      ];
      validate = true;
      expect = r: check ((configOf r).reboot.mode == "window" && (configOf r).reboot.bootloader == "grub") "docs: reboot.mode window, bootloader from boot.loader";
    };
    reboot-grub-default-saved = {
      modules = withSettings { reboot.mode = "window"; } ++ [ { boot.loader.grub.default = "saved"; } ];
      assertions = [ "boot.loader.grub.default is\n\"saved\"" ];
    };
    reboot-grub-default-saved-never = {
      # reboot.mode never does not reboot: "saved" is the administrator's business then.
      modules = withSettings { } ++ [ { boot.loader.grub.default = "saved"; } ];
    };
    reboot-grub-users = {
      modules = withSettings { reboot.mode = "window"; } ++ [ { boot.loader.grub.users.root.hashedPasswordFile = "/etc/grub-root.hash"; } ];
      assertions = [ "Add --unrestricted to boot.loader.grub.subEntryOptions" ];
    };
    reboot-grub-users-unrestricted = {
      modules = withSettings { reboot.mode = "window"; } ++ [
        {
          boot.loader.grub.users.root.hashedPasswordFile = "/etc/grub-root.hash";
          boot.loader.grub.subEntryOptions = "--class nixos --unrestricted";
        }
      ];
    };
    reboot-grub-configuration-limit = {
      modules = withSettings { reboot.mode = "window"; } ++ [ { boot.loader.grub.configurationLimit = 1; } ];
      assertions = [ "boot.loader.grub.configurationLimit is 1" ];
    };
    reboot-systemd-boot-configuration-limit = {
      modules = withSettings { reboot.mode = "window"; } ++ [
        {
          boot.loader.systemd-boot.enable = true;
          boot.loader.grub.enable = false;
          boot.loader.systemd-boot.configurationLimit = 1;
        }
      ];
      assertions = [ "boot.loader.systemd-boot.configurationLimit is 1" ];
    };
    reboot-systemd-boot-configuration-limit-2 = {
      modules = withSettings { reboot.mode = "window"; } ++ [
        {
          boot.loader.systemd-boot.enable = true;
          boot.loader.grub.enable = false;
          boot.loader.systemd-boot.configurationLimit = 2;
        }
      ];
    };

    # NixOS appends systemd to every service's path; the module must not add it again.
    path-systemd-once = {
      modules = withSettings { };
      expect =
        r:
        lib.concatMap (
          unit:
          let
            p = pathEntries r unit;
          in
          check (count "${fakePackage "systemd"}/bin" p == 1) "${unit}: systemd/bin must be on PATH once, PATH is ${builtins.toJSON p}"
          ++ check (builtins.all (x: count "${fakePackage x}/bin" p == 1) [ "nix" "git" "openssh" "coreutils" ]) "${unit}: nix, git, openssh, coreutils once each on PATH"
          ++ check (count "${fakePackage "gnupg"}/bin" p == 0) "${unit}: no gnupg while trust.mode is off"
        ) [ "pullnix-executor" "pullnix-watcher" ];
    };

    # settings.operators.group is THE group: created, and written to the file.
    operators-group = {
      modules = withSettings { operators.group = "ops"; };
      validate = true;
      expect =
        r:
        check (r.config.users.groups ? ops) "settings.operators.group = \"ops\" creates the group ops"
        ++ check (!(r.config.users.groups ? pullnix)) "no group pullnix when the operator group is ops"
        ++ check ((configOf r).operators.group == "ops") "the file names the group ops";
    };

    # The old option names are aliases of the new ones (mkRenamedOptionModule), with a warning.
    old-names = {
      modules = [
        machine
        {
          services.pullnix = {
            enable = true;
            repository = repo;
            build.extraFlags = [ "--max-jobs" "0" ];
            operators.group = "ops";
          };
        }
      ];
      validate = true;
      renamed = [
        "repository"
        "build"
        "operators"
      ];
      expect =
        r:
        let
          j = configOf r;
        in
        check (j.repository.url == repo.url && j.build.extraFlags == [ "--max-jobs" "0" ]) "old names reach the file"
        ++ check (r.config.users.groups ? ops) "old operators.group reaches the group";
    };

    classic-with-nixpath = {
      modules = withSettings {
        build = {
          mode = "classic";
          file = "hosts/edge-01/configuration.nix";
        };
      };
      validate = true;
      expect =
        r:
        check (r.config.systemd.services.pullnix-watcher.environment.NIX_PATH or null == "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos:nixos-config=/etc/nixos/configuration.nix:/nix/var/nix/profiles/per-user/root/channels") "classic: NIX_PATH from nix.nixPath"
        ++ check (!(r.config.systemd.services.pullnix-watcher.environment ? NIX_CONFIG)) "classic: no NIX_CONFIG";
    };

    flake-environment = {
      modules = withSettings { };
      expect = r: check (r.config.systemd.services.pullnix-watcher.environment.NIX_CONFIG or null == "extra-experimental-features = nix-command flakes") "flake: NIX_CONFIG enables flakes for pullnix";
    };

    no-hostname = {
      modules = [
        { networking.hostName = ""; }
        (pullnix { })
      ];
      validate = true;
      expect = r: check ((configOf r).build.host == null) "build.host is null without a host name";
    };

    known-hosts-as-nix-path = {
      modules = withSettings { repository.knownHostsFile = ./fixtures/known_hosts; };
      validate = true;
      expect =
        r:
        let
          k = (configOf r).repository.knownHostsFile;
        in
        check (lib.hasPrefix builtins.storeDir k && lib.hasSuffix "-known_hosts" k) "a Nix path knownHostsFile is written as its store path, got ${k}";
    };

    gate-on = {
      modules = withSettings {
        gates.vulnerabilities = {
          enable = true;
          minSeverity = 9;
          allow = [ "CVE-2023-4863" ];
        };
      };
      validate = true;
      expect =
        r:
        let
          g = (configOf r).gates.vulnerabilities;
        in
        check (g.command == "${fakePackage "vulnix"}/bin/vulnix") "gate on: command is nixpkgs' vulnix, got ${g.command}"
        ++ check (g.minSeverity == 9 && g.onError == "allow") "gate settings written with their defaults";
    };
    gate-off = {
      modules = withSettings { };
      expect = r: check ((configOf r).gates.vulnerabilities.command == "vulnix") "gate off: command is not a store path";
    };

    trust-ssh = {
      modules = withSettings {
        trust = {
          mode = "all";
          allowedSigners = [
            {
              principal = "alice@example.org";
              key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzDE2z/V2SYGvswcsj7bLop/tZMNbwND9+L+pykS7Nn";
            }
          ];
        };
      };
      validate = true;
      expect =
        r:
        check (
          (configOf r).trust.allowedSigners == [
            {
              principal = "alice@example.org";
              key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzDE2z/V2SYGvswcsj7bLop/tZMNbwND9+L+pykS7Nn";
              validAfter = null;
              validBefore = null;
              role = "human";
            }
          ]
        ) "trust.allowedSigners written with null windows and the human role"
        ++ check (count "${fakePackage "gnupg"}/bin" (pathEntries r "pullnix-watcher") == 1) "trust on: gnupg joins the units' path";
    };

    checks-and-hooks = {
      modules = withSettings {
        checks.web = {
          type = "http";
          url = "http://127.0.0.1/healthz";
        };
        hooks.onFailure.argv = [ "/etc/pullnix/notify" ];
      };
      validate = true;
      expect =
        r:
        let
          j = configOf r;
        in
        check (j.checks.web.url == "http://127.0.0.1/healthz" && j.checks.web.expectStatus == null) "checks written with their defaults"
        ++ check (j.hooks.onFailure.argv == [ "/etc/pullnix/notify" ] && j.hooks.preDeploy == null) "hooks written";
    };

    # The examples of docs/nixos.md and docs/vulnerabilities.md, as written there (keep them in step).
    docs-flake-example = {
      modules = [
        machine
        {
          services.pullnix = {
            enable = true;
            settings = {
              repository = {
                url = "git@github.com:example/machines.git";
                branch = "main";
                sshKeyFile = "/etc/pullnix/deploy_key";
                knownHostsFile = "/etc/pullnix/known_hosts";
              };
              operators.keys = [
                {
                  id = "alice@laptop";
                  publicKey = "ed25519:9yq0dZ3H1oZ2q3nQ4cJtS1u8bVv7wX6yZ5aB4cD3eF2";
                }
              ];
            };
          };
        }
      ];
      validate = true;
      expect = r: check ((configOf r).build.host == "edge-01" && (configOf r).operators.keys != [ ]) "docs flake example: host and operator key written";
    };
    docs-classic-example = {
      modules = [
        machine
        {
          services.pullnix = {
            enable = true;
            settings = {
              repository.url = "git@github.com:example/machines.git";
              repository.sshKeyFile = "/etc/pullnix/deploy_key";
              repository.knownHostsFile = "/etc/pullnix/known_hosts";
              build.mode = "classic";
              build.file = "hosts/edge-01/configuration.nix";
            };
          };
        }
      ];
      validate = true;
    };
    docs-checks-example = {
      modules = withSettings {
        checks.web = {
          type = "http";
          url = "http://127.0.0.1:8080/health";
          bodyPattern = "^ok";
        };
        checks.db = {
          type = "unit";
          unit = "postgresql.service";
        };
        checks.smoke = {
          type = "command";
          argv = [ "/run/current-system/sw/bin/curl" "-fsS" "http://127.0.0.1/" ];
          timeoutSec = 20;
        };
        hooks.preDeploy = {
          argv = [ "/etc/pullnix/maintenance-window" ];
        };
        hooks.onFailure = {
          argv = [ "/etc/pullnix/notify" ];
          user = "notify";
        };
        metrics.textfileDirectory = "/var/lib/prometheus-node-exporter-text-files";
      };
      validate = true;
    };
    docs-vulnerabilities-example = {
      modules = withSettings {
        gates.vulnerabilities = {
          enable = true;
          minSeverity = 7.0;
          allow = [ "CVE-2023-4863" ];
          onNew = "refuse";
          onError = "allow";
          timeoutSec = 900;
        };
      };
      validate = true;
    };

    # The pullnix part of the NixOS VM test's machine (nixos/tests/vm.nix, which needs KVM).
    vm-test-machine = {
      modules = [ ../tests/pullnix-machine.nix ];
      validate = true;
      expect =
        r:
        let
          j = configOf r;
        in
        check (j.build.mode == "classic" && j.verify.initialBackoffMs == 500 && j.poll.intervalSec == 5) "the VM machine's settings reach the file"
        ++ check (r.config.systemd.services.pullnix-watcher.environment.NIX_PATH == "nixpkgs=${(import ./pkgs.nix { inherit lib; }).path}") "the VM machine's NIX_PATH is its nixpkgs";
    };

    # ---- assertions: each exactly once, with a clear message ----------------------------------
    empty-url = {
      modules = withSettings { repository.url = ""; };
      assertions = [ "services.pullnix.settings.repository.url is empty" ];
    };
    classic-empty-nixpath = {
      modules = withSettings { build.mode = "classic"; } ++ [ { nix.nixPath = [ ]; } ];
      assertions = [ "services.pullnix.settings.build.mode is \"classic\", but nix.nixPath is empty" ];
    };
    ssh-key-without-known-hosts = {
      modules = withSettings { repository.knownHostsFile = null; };
      assertions = [ "repository.knownHostsFile is not" ];
    };
    ssh-key-on-https = {
      modules = withSettings {
        repository = {
          url = "https://example.org/m.git";
          knownHostsFile = null;
        };
      };
      assertions = [ "is not an SSH URL" ];
    };
    fixed-key-in-settings = {
      modules = withSettings { socketPath = "/tmp/x.sock"; };
      assertions = [ "services.pullnix.settings must not set socketPath" ];
    };
    unknown-freeform-key = {
      modules = withSettings { verify.bogus = 1; };
      assertions = [ "services.pullnix.settings.verify.bogus: unknown key" ];
    };
    freeform-value-out-of-range = {
      modules = withSettings { verify.initialBackoffMs = 1; };
      assertions = [ "services.pullnix.settings.verify.initialBackoffMs: must be at least 10" ];
    };
    duplicate-operator-ids = {
      modules = withSettings {
        operators.keys = [
          {
            id = "a";
            publicKey = "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
          }
          {
            id = "a";
            publicKey = "ed25519:BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
          }
        ];
      };
      assertions = [ "services.pullnix.settings.operators.keys: duplicate id(s) a" ];
    };
    # source.mode = "prebuilt" (issue 23): the caches reach the nix-daemon as trusted
    # substituters, their keys join NixOS's own trusted-public-keys (merged with nix.nix's
    # cache.nixos.org key, not replacing it), the daemon's negative narinfo cache is off.
    prebuilt = {
      modules = withSettings prebuiltSettings;
      validate = true;
      expect =
        r:
        let
          nix = r.config.nix.settings;
        in
        check (nix.trusted-substituters == [ "http://cache.example.org" ]) "prebuilt: the cache is a trusted substituter (got ${builtins.toJSON nix.trusted-substituters})"
        ++ check (builtins.sort builtins.lessThan nix.trusted-public-keys == builtins.sort builtins.lessThan [ ciKey "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ]) "prebuilt: the cache key joins NixOS's trusted-public-keys (got ${builtins.toJSON nix.trusted-public-keys})"
        ++ check (nix.narinfo-cache-negative-ttl == 0) "prebuilt: the daemon's negative narinfo cache is off"
        ++ check (nix.require-sigs) "prebuilt: require-sigs stays true"
        ++ check ((configOf r).source.mode == "prebuilt" && (configOf r).source.manifest == "hosts/<host>.json") "prebuilt: source written to the config file"
        ++ check ((builtins.head (configOf r).trust.allowedSigners).role == "builder") "prebuilt: the builder role is written";
    };
    build-mode-leaves-nix-alone = {
      modules = withSettings { };
      expect =
        r:
        check (r.config.nix.settings.trusted-substituters == [ ]) "build mode: no trusted substituter added"
        ++ check (!(r.config.nix.settings ? narinfo-cache-negative-ttl)) "build mode: narinfo-cache-negative-ttl untouched";
    };
    prebuilt-substituters-forced-away = {
      modules = withSettings prebuiltSettings ++ [
        {
          nix.settings.trusted-substituters = lib.mkForce [ ];
          nix.settings.trusted-public-keys = lib.mkForce [ ];
        }
      ];
      assertions = [
        "nix.settings.trusted-substituters\nlacks http://cache.example.org"
        "nix.settings.trusted-public-keys\nlacks ${ciKey}"
      ];
    };
    prebuilt-without-signatures = {
      modules = withSettings prebuiltSettings ++ [ { nix.settings.require-sigs = false; } ];
      assertions = [ "nix.settings.require-sigs is false" ];
    };
    prebuilt-without-cache = {
      modules = withSettings {
        source.mode = "prebuilt";
        trust = prebuiltSettings.trust;
      };
      assertions = [ "source.caches or source.publicKeys is empty" ];
    };
    prebuilt-trust-off = {
      modules = withSettings (builtins.removeAttrs prebuiltSettings [ "trust" ]);
      warnings = [ "with trust.mode \"off\": anyone who can push" ];
    };
    prebuilt-negative-ttl-long = {
      modules = withSettings prebuiltSettings ++ [ { nix.settings.narinfo-cache-negative-ttl = 3600; } ];
      warnings = [ "narinfo-cache-negative-ttl (3600 s) is longer than poll.intervalSec" ];
    };
    trust-without-keys = {
      modules = withSettings { trust.mode = "all"; };
      assertions = [ "no key is trusted" ];
    };
    bad-check = {
      modules = withSettings { checks.web.type = "http"; };
      assertions = [ "services.pullnix.settings.checks.web.url is required for a http check" ];
    };
    # Issue 21, part 2: these evaluated, were written to /etc/pullnix/config.json, and the new
    # daemons refused to start with it (exit 78 for ever after the self-upgrade). Refused at
    # evaluation now, from the schema (the url's pattern; the per-type fields of x-pullnix-kinds).
    # (The url without an http(s) scheme: errors.check-url-* below, a type error of the option.)
    check-field-of-another-type = {
      modules = withSettings { checks.web = { type = "tcp"; host = "127.0.0.1"; port = 80; url = "http://127.0.0.1/"; }; };
      assertions = [ "services.pullnix.settings.checks.web.url is not used by a tcp check (it uses host, port)" ];
    };
    check-reserved-name = {
      modules = withSettings { checks.pullnix-config = { type = "unit"; unit = "nginx.service"; }; };
      assertions = [ "services.pullnix.settings.checks.pullnix-config: 'pullnix-config' is the name of a built-in check" ];
    };

    # ---- the points of issue 14, written with the old option names ---------------------------
    # These evaluate the same way against the module before settings held the typed options
    # (run.sh with PULLNIX_MODULE=<old module.nix>), where each one fails for the reason named.

    # Before: repository.url = "" gave three assertions (the URL, the schema's minLength, and
    # "sshKeyFile is set but the URL is not an SSH URL").
    old-names-empty-url = {
      modules = withOldNames { repository.url = ""; };
      renamed = [ "repository" ];
      assertions = [ "services.pullnix.settings.repository.url is empty" ];
    };
    # Before: settings.operators.group = "ops" was written to the file while the group pullnix
    # was created (and ops not).
    old-names-operators-group-in-settings = {
      modules = withOldNames { settings.operators.group = "ops"; };
      renamed = [ "repository" ];
      expect =
        r:
        check (r.config.users.groups ? ops && !(r.config.users.groups ? pullnix)) "settings.operators.group = \"ops\": the group ops is created, and no group pullnix, got ${builtins.toJSON (builtins.attrNames r.config.users.groups)}"
        ++ check ((configOf r).operators.group == "ops") "the file names ops";
    };
    # Before: systemd was on the units' PATH twice (the module's path and NixOS's).
    old-names-systemd-once = {
      modules = withOldNames { };
      renamed = [ "repository" ];
      expect =
        r:
        let
          p = pathEntries r "pullnix-watcher";
        in
        check (count "${fakePackage "systemd"}/bin" p == 1) "systemd/bin once on the watcher's PATH, got ${toString (count "${fakePackage "systemd"}/bin" p)} times";
    };
    # Before: classic mode with an empty nix.nixPath evaluated, and the watcher had no NIX_PATH.
    old-names-classic-empty-nixpath = {
      modules = withOldNames { build.mode = "classic"; } ++ [ { nix.nixPath = [ ]; } ];
      renamed = [
        "repository"
        "build"
      ];
      assertions = [ "but nix.nixPath is empty" ];
    };
    # Before: enable's description did not say what it starts; package was a plain mkOption.
    old-names-declarations = {
      modules = withOldNames { };
      renamed = [ "repository" ];
      expect =
        r:
        let
          o = r.options.services.pullnix;
        in
        check (hasInfix "pullnix-executor" o.enable.description && hasInfix "pullnix-watcher" o.enable.description) "enable's description names the services it starts, got ${builtins.toJSON o.enable.description}"
        ++ check (lib.hasPrefix "The pullnix package to use." o.package.description) "package is an mkPackageOption, got ${builtins.toJSON o.package.description}"
        ++ check (o.settings.type.description == "open submodule of (JSON value)") "settings is an open submodule of JSON value, got ${builtins.toJSON o.settings.type.description}";
    };

    # ---- warnings ---------------------------------------------------------------------------
    file-in-flake-mode = {
      modules = withSettings { build.file = "hosts/x.nix"; };
      warnings = [ "services.pullnix.settings.build.file is set but build.mode is \"flake\"" ];
    };
  };

  # ---- evaluation errors: each must fail, naming the option ---------------------------------
  errors = {
    # Issue 21, part 2: a check url the daemons refuse (no http:// or https://) is refused by the
    # option's type, which is the schema's pattern (options.nix derives it from the schema).
    check-url-without-scheme = {
      modules = withSettings { checks.web = { type = "http"; url = "localhost:8080/health"; }; };
      message = "A definition for option `services.pullnix.settings.checks.web.url' is not of type `null or string matching the pattern ^[Hh][Tt][Tt][Pp][Ss]?://[^ ]+$'";
    };
    check-url-other-scheme = {
      modules = withSettings { checks.web = { type = "http"; url = "ftp://127.0.0.1/health"; }; };
      message = "A definition for option `services.pullnix.settings.checks.web.url' is not of type";
    };
    # A key defined twice with two values, under the old and the new name.
    conflict-old-and-new-name = {
      modules = withSettings { } ++ [ { services.pullnix.repository.url = "git@example.org:other.git"; } ];
      message = "The option `services.pullnix.settings.repository.url' has conflicting definition values";
    };
    # The same with the old name and settings, as issue 14 found it: before, settings won silently.
    conflict-old-name-and-settings = {
      modules = withOldNames { settings.repository.url = "git@example.org:other.git"; };
      message = "The option `services.pullnix.settings.repository.url' has conflicting definition values";
    };
    # Before: `settings = 5` (a JSON value) was accepted by the option and failed later inside
    # the module ("value is an integer while a set was expected"), without the option's name.
    old-names-settings-not-an-attrset = {
      modules = withOldNames { settings = 5; };
      message = "A definition for option `services.pullnix.settings' is not of type";
    };
    # ... or twice under the new name.
    conflict-two-definitions = {
      modules = withSettings { } ++ [ { services.pullnix.settings.operators.group = "ops"; } { services.pullnix.settings.operators.group = "wheel"; } ];
      message = "The option `services.pullnix.settings.operators.group' has conflicting definition values";
    };
    settings-not-an-attrset = {
      modules = [
        machine
        {
          services.pullnix.enable = true;
          services.pullnix.settings = 5;
        }
      ];
      message = "services.pullnix.settings' is not of type `open submodule of (JSON value)'";
    };
    settings-a-string = {
      modules = [
        machine
        {
          services.pullnix.enable = true;
          services.pullnix.settings = "repository.url=git@example.org:m.git";
        }
      ];
      message = "services.pullnix.settings' is not of type `open submodule of (JSON value)'";
    };
    url-missing = {
      modules = [
        machine
        { services.pullnix.enable = true; }
      ];
      message = "services.pullnix.settings.repository.url' was accessed but has no value defined";
    };
    url-not-a-string = {
      modules = withSettings { repository.url = 5; };
      message = "services.pullnix.settings.repository.url' is not of type `string'";
    };
    ssh-key-with-comment = {
      modules = withSettings {
        trust.allowedSigners = [
          {
            principal = "a";
            key = "ssh-ed25519 AAAA alice@laptop";
          }
        ];
      };
      message = "services.pullnix.settings.trust.allowedSigners.\"[definition 1-entry 1]\".key' is not of type";
    };
    private-openpgp-key = {
      modules = withSettings { trust.openpgpKeys = [ "-----BEGIN PGP PRIVATE KEY BLOCK-----\n" ]; };
      message = "services.pullnix.settings.trust.openpgpKeys.\"[definition 1-entry 1]\"' is not of type";
    };
    absolute-classic-file = {
      modules = withSettings {
        build = {
          mode = "classic";
          file = "/etc/nixos/configuration.nix";
        };
      };
      message = "services.pullnix.settings.build.file' is not of type";
    };
    ssh-key-as-operator-key = {
      modules = withSettings {
        operators.keys = [
          {
            id = "a";
            publicKey = "ssh-ed25519 AAAA";
          }
        ];
      };
      message = "services.pullnix.settings.operators.keys.\"[definition 1-entry 1]\".publicKey' is not of type";
    };
    private-key-as-nix-path = {
      modules = withSettings { repository.sshKeyFile = ./fixtures/known_hosts; };
      message = "services.pullnix.settings.repository.sshKeyFile' is not of type";
    };
    poll-interval-zero = {
      modules = withSettings { poll.intervalSec = 0; };
      message = "services.pullnix.settings.poll.intervalSec' is not of type";
    };
    unknown-activation-mode = {
      modules = withSettings { activation = "boot"; };
      message = "services.pullnix.settings.activation' is not of type";
    };
    min-severity-above-10 = {
      modules = withSettings { gates.vulnerabilities.minSeverity = 10.5; };
      message = "services.pullnix.settings.gates.vulnerabilities.minSeverity' is not of type";
    };
    allow-not-a-cve = {
      modules = withSettings { gates.vulnerabilities.allow = [ "openssl" ]; };
      message = "services.pullnix.settings.gates.vulnerabilities.allow.\"[definition 1-entry 1]\"' is not of type";
    };
    unknown-on-error = {
      modules = withSettings { gates.vulnerabilities.onError = "ignore"; };
      message = "services.pullnix.settings.gates.vulnerabilities.onError' is not of type";
    };
  };

  evalCase = c: eval { inherit (c) modules; pkgsExtra = c.pkgsExtra or { }; };

  runCase =
    c:
    let
      r = evalCase c;
    in
    matchAll "failed assertion(s)" (c.assertions or [ ]) (failedAssertions r.config)
    ++ matchAll "warning(s)" ((c.warnings or [ ]) ++ map renamedWarning (c.renamed or [ ])) r.config.warnings
    ++ (c.expect or (_: [ ])) r;
in
{
  caseNames = builtins.attrNames cases;
  results = lib.mapAttrs (_: runCase) cases;
  configs = lib.mapAttrs (_: c: configOf (evalCase c)) (lib.filterAttrs (_: c: c.validate or false) cases);
  # The module's own option documentation (what nixpkgs' manual would render), for run.sh to
  # compare with docs/options.md: every visible option below services.pullnix, but the fields
  # of list/attrset elements (options.md describes those under their option).
  optionDocs = map (o: {
    inherit (o) name description;
    default = o.default.text or null;
  }) (
    builtins.filter (
      o:
      o.visible
      && !o.internal
      && lib.hasPrefix "services.pullnix." o.name
      && !(hasInfix ".<name>." o.name || hasInfix ".*." o.name)
    ) (lib.optionAttrSetToDocList (evalCase cases.minimal).options)
  );
  errorNames = builtins.attrNames errors;
  errors = lib.mapAttrs (_: e: {
    inherit (e) message;
    force = forceSystem (evalCase e);
  }) errors;
}
