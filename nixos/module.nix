# NixOS module: services.pullnix.
#
#   services.pullnix.enable    mkEnableOption
#   services.pullnix.package   mkPackageOption (pkgs.pullnix, else nixos/package.nix)
#   services.pullnix.settings  the configuration file /etc/pullnix/config.json (RFC 42): a
#                              freeform submodule of (pkgs.formats.json { }).type whose typed
#                              options are the keys listed in options.nix
#
# Where things come from:
#   options.nix   the option list (plain data; also read by options-doc.nix for docs/options.md)
#   schema.nix    types, defaults and validation, all derived from shared/schema/config.schema.json
#   units.nix     the two systemd units (also rendered by the real-systemd test bed)
#   package.nix   the package, when pkgs has no `pullnix` (no overlay applied)
# Evaluated with nixpkgs' lib by nixos/eval/ (bash nixos/check.sh with PULLNIX_NIXPKGS_LIB set).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    types
    mkOption
    mkIf
    concatMapStringsSep
    concatStringsSep
    optionalAttrs
    ;

  cfg = config.services.pullnix;
  settings = cfg.settings;
  settingsFormat = pkgs.formats.json { };
  schema = import ./schema.nix;
  inherit (import ./options.nix) decls;

  # The groups of options that were services.pullnix.<group> before they moved into settings.
  # A fixed list (a record of old names, like nixpkgs' rename.nix): options added since never
  # had another name.
  renamedGroups = [
    "repository"
    "build"
    "poll"
    "activation"
    "activationTimeoutSec"
    "verify"
    "checks"
    "hooks"
    "metrics"
    "operators"
    "trust"
    "gates"
    "logLevel"
  ];

  # ---- options, from options.nix + the schema ----------------------------------------------

  # A schema node -> a module-system type. Lengths (minLength/maxLength) are not in the types;
  # the schema validation assertion below reports them with the key's name.
  typeOf =
    itemDescriptions: n:
    let
      ts =
        if !(n ? type) then
          [ ]
        else if builtins.isList n.type then
          n.type
        else
          [ n.type ];
      nullable = builtins.elem "null" ts;
      nonNull = builtins.filter (t: t != "null") ts;
      base =
        if n ? enum then
          types.enum n.enum
        else if nonNull == [ "string" ] then
          (
            if n ? pattern then
              # Described with the schema's own pattern (the ERE translation is an internal detail).
              types.strMatching (schema.regex n) // { description = "string matching the pattern ${n.pattern}"; }
            else
              types.str
          )
        else if nonNull == [ "integer" ] then
          (
            if n ? minimum && n ? maximum then
              types.ints.between n.minimum n.maximum
            else if n ? minimum then
              types.addCheck types.int (x: x >= n.minimum)
            else
              types.int
          )
        else if nonNull == [ "number" ] then
          (if n ? minimum && n ? maximum then types.numbers.between n.minimum n.maximum else types.number)
        else if nonNull == [ "boolean" ] then
          types.bool
        else if nonNull == [ "array" ] then
          types.listOf (typeOf itemDescriptions n.items)
        else if nonNull == [ "object" ] && builtins.isAttrs (n.additionalProperties or null) then
          types.attrsOf (typeOf itemDescriptions n.additionalProperties)
        else if nonNull == [ "object" ] then
          types.submodule {
            options = lib.mapAttrs (
              name: p:
              mkOption (
                {
                  type = typeOf { } p;
                  description = itemDescriptions.${name} or (p.description or name);
                }
                // optionalAttrs (p ? default) { inherit (p) default; }
              )
            ) n.properties;
          }
        else
          throw "pullnix module: cannot map the schema type ${builtins.toJSON ts} to an option type";
    in
    if nullable then types.nullOr base else base;

  # A config-file entry of options.nix -> the typed option at services.pullnix.settings.<key>.
  mkDecl =
    d:
    let
      n = schema.node d.key;
      description = d.description or (n.description or "");
      defaults =
        if d.key == [ "build" "host" ] then
          {
            default = if config.networking.hostName != "" then config.networking.hostName else null;
            defaultText = lib.literalExpression d.defaultText;
          }
        else if d.key == [ "gates" "vulnerabilities" "command" ] then
          {
            # Only when enabled: the store path would otherwise put vulnix into every system.
            default =
              if settings.gates.vulnerabilities.enable then lib.getExe' pkgs.vulnix "vulnix" else n.default;
            defaultText = lib.literalExpression d.defaultText;
          }
        else if d.key == [ "reboot" "bootloader" ] then
          {
            default =
              if config.boot.loader.systemd-boot.enable then
                "systemd-boot"
              else if config.boot.loader.grub.enable then
                "grub"
              else
                "none";
            defaultText = lib.literalExpression d.defaultText;
          }
        else if d ? default then
          { inherit (d) default; }
        else if n ? default then
          { inherit (n) default; }
        else
          { };
    in
    mkOption (
      {
        type =
          if (d.nixType or null) == "pathOrNull" then
            types.nullOr types.path
          else
            typeOf (d.itemDescriptions or { }) n;
        inherit description;
      }
      // defaults
      // optionalAttrs (d ? example) { inherit (d) example; }
    );

  declOf = kind: lib.findFirst (d: (d.kind or null) == kind) (throw "options.nix has no ${kind} entry") decls;

  settingsOptions = builtins.foldl' (
    acc: d: lib.recursiveUpdate acc (lib.setAttrByPath d.key (mkDecl d))
  ) { } (builtins.filter (d: d ? key) decls);

  # ---- the config file ---------------------------------------------------------------------

  # The file is `settings` itself; a Nix path value for knownHostsFile is copied to the store
  # here and written as its store path.
  configJSON = settings // {
    repository = settings.repository // {
      knownHostsFile =
        if settings.repository.knownHostsFile == null then null else "${settings.repository.knownHostsFile}";
    };
    # The watcher's user is fixed by the units (units.nix): the config file names it (D20).
    watcher = {
      user = "pullnix-watcher";
    };
  };

  # Each problem names the option (services.pullnix.settings.<key>). An empty URL has an
  # assertion of its own, so the schema's "at least 1 character" for it is not repeated.
  schemaProblems = map (p: "services.pullnix.settings.${p}") (
    builtins.filter (p: !(url == "" && lib.hasPrefix "repository.url: " p)) (schema.validate configJSON)
  );

  # Pretty-printed (jq) so an operator can read /etc/pullnix/config.json.
  configFile = settingsFormat.generate "pullnix-config.json" configJSON;

  url = settings.repository.url;
  # What git treats as SSH: ssh:// (and git+ssh://, ssh+git://), or the scp-like form
  # [user@]host:path, i.e. no scheme and a ':' before the first '/'.
  isSshUrl =
    let
      scheme = builtins.match "([A-Za-z][A-Za-z0-9+.-]*)://.*" url;
    in
    if scheme != null then
      builtins.elem (builtins.head scheme) [
        "ssh"
        "git+ssh"
        "ssh+git"
      ]
    else
      builtins.match "[^/]+:.*" url != null;

  fixedKeys = builtins.filter (k: settings ? ${k}) [
    "socketPath"
    "privateSocketPath"
    "stateDir"
    "watcher"
    "units"
    "paths"
  ];

  # What the schema cannot say about a check (the daemons refuse the same at config load).
  checkProblems = import ./check-definitions.nix {
    inherit (settings) checks;
    verifyTimeoutSec = settings.verify.timeoutSec;
  };

  keyIds = map (k: k.id) settings.operators.keys;
  duplicateIds = lib.unique (builtins.filter (id: lib.count (x: x == id) keyIds > 1) keyIds);

  # NixOS appends coreutils, findutils, gnugrep, gnused and systemd (systemctl, systemd-run) to
  # every service's path itself; they are not repeated here.
  unitPath = [
    config.nix.package
    pkgs.git
    pkgs.openssh
  ]
  # git runs gpg to check OpenPGP commit signatures (ssh-keygen, for SSH ones, is in openssh).
  ++ lib.optional (settings.trust.mode != "off") pkgs.gnupg
  # grub-reboot and grub-editenv for the trial boot's one-shot entry (bootctl is in systemd).
  # pkgs.grub2: nixpkgs' grub.nix declares no boot.loader.grub.package (its GRUB is
  # system.build.grub, null with devices = [ "nodev" ]); grub-reboot and grub-editenv only edit
  # grubenv, so any GRUB 2 build does.
  ++ lib.optional (settings.reboot.mode == "window" && settings.reboot.bootloader == "grub") pkgs.grub2;

  # reboot.mode = "window" on the machine's bootloader (docs/nixos.md "Reboots"): what breaks a trial boot.
  windowOn = loader: settings.reboot.mode == "window" && settings.reboot.bootloader == loader;
  grubCfg = config.boot.loader.grub;
  rebootAssertions = [
    {
      # install-grub.pl turns on savedefault for "saved": the last booted entry, the trial one
      # included, becomes the next default instead of the one pullnix installed.
      assertion = !(windowOn "grub" && toString grubCfg.default == "saved");
      message = ''
        services.pullnix.settings.reboot.mode is "window" with GRUB, but boot.loader.grub.default is
        "saved": GRUB then saves the entry it boots as the next default (savedefault), so a failed
        trial system could boot again after the fallback reboot. pullnix needs no "saved" default
        (NixOS's grub.cfg honours grub-reboot's next_entry whatever the default is): remove
        boot.loader.grub.default, or set it to a number.
      '';
    }
    {
      # grub.nix: with users set, "all boot options except the default are password-protected";
      # the generations' entries get subEntryOptions, which has no --unrestricted by default.
      assertion = !(windowOn "grub" && grubCfg.users != { } && !(lib.hasInfix "--unrestricted" (toString grubCfg.subEntryOptions)));
      message = ''
        services.pullnix.settings.reboot.mode is "window" with GRUB, but boot.loader.grub.users is
        set and boot.loader.grub.subEntryOptions has no --unrestricted: the trial entry (in
        "All configurations") would wait at GRUB's password prompt and the unattended trial boot
        would never come up. Add --unrestricted to boot.loader.grub.subEntryOptions (for example
        "--class nixos --unrestricted"), or use reboot.mode = "never".
      '';
    }
    {
      assertion = !(windowOn "grub" && grubCfg.configurationLimit < 2);
      message = ''
        services.pullnix.settings.reboot.mode is "window" with GRUB, but
        boot.loader.grub.configurationLimit is ${toString grubCfg.configurationLimit}: the trial needs
        entries for both the previous and the new system. Set it to 2 or more.
      '';
    }
    {
      assertion =
        !(windowOn "systemd-boot" && config.boot.loader.systemd-boot.configurationLimit != null && config.boot.loader.systemd-boot.configurationLimit < 2);
      message = ''
        services.pullnix.settings.reboot.mode is "window" with systemd-boot, but
        boot.loader.systemd-boot.configurationLimit is ${toString config.boot.loader.systemd-boot.configurationLimit}:
        the builder keeps only the newest entries, so the previous system's entry is removed and
        the trial system becomes the default. Set it to 2 or more (or null: no limit).
      '';
    }
  ];

  # source.mode = "prebuilt" (docs/prebuilt.md): the unprivileged watcher fetches the closure
  # through the nix-daemon, which lets a client that is not a trusted user use only the
  # substituters listed in trusted-substituters or substituters (Nix's src/libstore/daemon.cc,
  # "ignoring untrusted substituter") and checks narinfo signatures against trusted-public-keys
  # (require-sigs, true by default). The watcher passes `--option substituters <caches>`, so the
  # caches go into trusted-substituters, not into every substitution of the machine.
  prebuilt = settings.source.mode == "prebuilt";
  nixSettings = config.nix.settings;
  untrustedCaches = builtins.filter (c: !(builtins.elem c nixSettings.trusted-substituters)) settings.source.caches;
  untrustedKeys = builtins.filter (k: !(builtins.elem k (nixSettings.trusted-public-keys or [ ]))) settings.source.publicKeys;
  prebuiltAssertions = [
    {
      assertion = !prebuilt || (settings.source.caches != [ ] && settings.source.publicKeys != [ ]);
      message = ''services.pullnix.settings.source.mode is "prebuilt" but source.caches or source.publicKeys is empty: the watcher would have no cache to fetch from, or Nix no key to accept a path with. Set both (docs/prebuilt.md).'';
    }
    {
      assertion = !prebuilt || untrustedCaches == [ ];
      message = ''
        services.pullnix.settings.source.mode is "prebuilt", but nix.settings.trusted-substituters
        lacks ${concatStringsSep ", " untrustedCaches}: the nix-daemon would ignore the cache for the
        unprivileged watcher ("ignoring untrusted substituter") and fetch nothing. Do not override
        nix.settings.trusted-substituters with mkForce; the module adds the caches to it.
      '';
    }
    {
      assertion = !prebuilt || untrustedKeys == [ ];
      message = ''
        services.pullnix.settings.source.mode is "prebuilt", but nix.settings.trusted-public-keys
        lacks ${concatStringsSep ", " untrustedKeys}: Nix would refuse every path the cache signed
        with it. Do not override nix.settings.trusted-public-keys with mkForce; the module adds the
        keys to it.
      '';
    }
    {
      assertion = !prebuilt || (nixSettings.require-sigs or true);
      message = ''services.pullnix.settings.source.mode is "prebuilt", but nix.settings.require-sigs is false: Nix would accept unsigned paths from the cache, and the signature on every path is what the prebuilt source relies on. Remove require-sigs = false.'';
    }
    {
      assertion = !prebuilt || settings.build.host != null;
      message = ''services.pullnix.settings.source.mode is "prebuilt", but build.host is null and networking.hostName is empty: the manifest path (source.manifest, "<host>") needs the host's name.'';
    }
  ];

  unitEnvironment =
    # The watcher runs `nix build <checkout>#…`; flakes may not be enabled in nix.conf, and
    # NIX_CONFIG enables them for pullnix only instead of changing the machine's settings.
    optionalAttrs (settings.build.mode == "flake") {
      NIX_CONFIG = "extra-experimental-features = nix-command flakes";
    }
    # Classic mode builds `<nixpkgs/nixos>`; services get no NIX_PATH of their own (an empty
    # nix.nixPath is refused by an assertion).
    // optionalAttrs (settings.build.mode == "classic" && config.nix.nixPath != [ ]) {
      NIX_PATH = concatStringsSep ":" config.nix.nixPath;
    };
in
{
  imports = map (
    group: lib.mkRenamedOptionModule [ "services" "pullnix" group ] [ "services" "pullnix" "settings" group ]
  ) renamedGroups;

  options.services.pullnix = {
    enable = lib.mkEnableOption (declOf "enable").enableName;

    # pkgs.pullnix when the overlay is applied; otherwise the package from this source tree.
    package = lib.mkPackageOption { pullnix = pkgs.pullnix or (pkgs.callPackage ./package.nix { }); } "pullnix" {
      inherit ((declOf "package")) extraDescription;
    };

    settings = mkOption {
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = settingsOptions;
      };
      default = { };
      inherit ((declOf "settings")) example description;
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = url != "";
        message = "services.pullnix.settings.repository.url is empty: set it to the git remote holding this machine's configuration.";
      }
      # The SSH checks say nothing useful about an empty URL (the assertion above does).
      {
        assertion =
          url == "" || !(isSshUrl && settings.repository.sshKeyFile != null && settings.repository.knownHostsFile == null);
        message = ''
          services.pullnix.settings.repository.sshKeyFile is set for the SSH remote "${url}", but
          services.pullnix.settings.repository.knownHostsFile is not: pullnix checks host keys
          strictly and never trusts on first use. Pin the server's key once (ssh-keyscan, then
          compare the fingerprint with the one your git host publishes) and set knownHostsFile to
          that file.
        '';
      }
      {
        assertion = url == "" || settings.repository.sshKeyFile == null || isSshUrl;
        message = ''services.pullnix.settings.repository.sshKeyFile is set, but services.pullnix.settings.repository.url "${url}" is not an SSH URL (ssh://… or user@host:path); the key would never be used.'';
      }
      {
        assertion = settings.build.mode != "classic" || config.nix.nixPath != [ ];
        message = ''
          services.pullnix.settings.build.mode is "classic", but nix.nixPath is empty (as it is with
          nix.channel.enable = false): the watcher builds <nixpkgs/nixos> with NIX_PATH taken from
          nix.nixPath, so it could not find nixpkgs. Set nix.nixPath (for example
          [ "nixpkgs=''${pkgs.path}" ] or a channel), or use build.mode = "flake".
        '';
      }
      {
        assertion = fixedKeys == [ ];
        message = "services.pullnix.settings must not set ${concatStringsSep ", " fixedKeys}: the socket, state directory and unit names are fixed by the module's systemd units.";
      }
      {
        assertion = duplicateIds == [ ];
        message = "services.pullnix.settings.operators.keys: duplicate id(s) ${concatStringsSep ", " duplicateIds}; every key needs its own id.";
      }
      {
        assertion =
          settings.trust.mode == "off" || settings.trust.allowedSigners != [ ] || settings.trust.openpgpKeys != [ ];
        message = ''services.pullnix.settings.trust.mode is "${settings.trust.mode}" but no key is trusted: set trust.allowedSigners (SSH keys) or trust.openpgpKeys (armored OpenPGP public keys), or every commit would be refused.'';
      }
      {
        assertion = checkProblems == [ ];
        message = "services.pullnix.settings.checks:\n${concatMapStringsSep "\n" (p: "  - ${p}") checkProblems}";
      }
    ]
    ++ rebootAssertions
    ++ prebuiltAssertions
    ++ [
      {
        assertion = schemaProblems == [ ];
        message = ''
          services.pullnix.settings (/etc/pullnix/config.json) does not satisfy the pullnix config schema:
          ${concatMapStringsSep "\n" (p: "  - ${p}") schemaProblems}
        '';
      }
    ];

    warnings =
      lib.optional (
        settings.build.mode == "flake" && settings.build.file != schema.default [ "build" "file" ]
      ) "services.pullnix.settings.build.file is set but build.mode is \"flake\"; the file is only used in classic mode."
      ++ lib.optional (
        settings.trust.since != null && settings.trust.mode != "all"
      ) "services.pullnix.settings.trust.since is set but trust.mode is \"${settings.trust.mode}\"; the anchor is only used in mode \"all\"."
      ++ lib.optional (
        prebuilt && settings.trust.mode == "off"
      ) "services.pullnix.settings.source.mode is \"prebuilt\" with trust.mode \"off\": anyone who can push to the branch chooses the system this machine runs (any path the cache signed). Set trust.mode and a builder key (trust.allowedSigners, role = \"builder\")."
      ++ lib.optional (
        prebuilt && (nixSettings.narinfo-cache-negative-ttl or 3600) > settings.poll.intervalSec
      ) "services.pullnix.settings.source.mode is \"prebuilt\", but nix.settings.narinfo-cache-negative-ttl (${toString (nixSettings.narinfo-cache-negative-ttl or 3600)} s) is longer than poll.intervalSec: a manifest pushed before the cache has its paths would wait that long after the paths arrive (the nix-daemon remembers the miss)."
      ++ lib.optional (
        settings.source.mode == "build" && (settings.source.caches != [ ] || settings.source.publicKeys != [ ] || settings.source.requireSignedSource)
      ) "services.pullnix.settings.source.caches, publicKeys or requireSignedSource is set but source.mode is \"build\"; they are only used in mode \"prebuilt\".";

    # source.mode = "prebuilt": the caches and their keys for the nix-daemon (see prebuiltAssertions).
    # narinfo-cache-negative-ttl: the daemon (root) keeps its own narinfo cache, in root's cache
    # directory (Nix's nar-info-disk-cache.cc: getCacheDir() + "/nix/binary-cache-v6.sqlite" in
    # 2.8), and ignores the setting from a client that is not trusted (daemon.cc), so a miss it
    # remembered (a manifest pushed before the cache) would stall the deployment for the default
    # hour. 0: a miss is asked again at the next poll.
    nix.settings = mkIf prebuilt {
      trusted-substituters = settings.source.caches;
      trusted-public-keys = settings.source.publicKeys;
      narinfo-cache-negative-ttl = lib.mkDefault 0;
    };

    # Created if new; an existing group of that name (say wheel) is merged with this, unchanged.
    users.groups.${settings.operators.group} = { };

    # The watcher's own user (units.nix, docs/decisions.md D20): no login, no home, no groups
    # but its own; the executor serves it /run/pullnix-watcher/executor.sock (group pullnix-watcher).
    # The deploy key (repository.sshKeyFile) must be readable by this user alone.
    users.users.pullnix-watcher = {
      isSystemUser = true;
      group = "pullnix-watcher";
      description = "pullnix watcher (follows the configuration repository, builds through the nix-daemon)";
    };
    users.groups.pullnix-watcher = { };

    # The watcher writes pullnix-watcher.prom into the textfile directory; it may write nothing
    # else (ProtectSystem=strict), so the directory is created for it: group pullnix-watcher, and
    # sticky (1775), so that it can create its own file but neither replace nor remove the
    # executor's (root's) one (issue 21). Both files are 0644, read by node_exporter's user.
    systemd.tmpfiles.rules = lib.optional (
      settings.metrics.textfileDirectory != null
    ) "d ${settings.metrics.textfileDirectory} 1775 root pullnix-watcher - -";

    environment.systemPackages = [ cfg.package ];

    # For pullnix-ctl, which reads /etc/pullnix/config.json by default. The daemons get the
    # store path itself (below), so a change of configuration changes both unit files: the
    # executor notices that its own unit changed and restarts itself once the deployment that
    # brought the change is finished (restartIfChanged = false keeps the switch from doing it).
    environment.etc."pullnix/config.json".source = configFile;

    systemd.services = import ./units.nix {
      executorExec = "${cfg.package}/bin/pullnix-executor";
      watcherExec = "${cfg.package}/bin/pullnix-watcher";
      configFile = "${configFile}";
      path = unitPath;
      environment = unitEnvironment;
      watcherReadWritePaths = lib.optional (
        settings.metrics.textfileDirectory != null
      ) "-${settings.metrics.textfileDirectory}";
    };
  };
}
