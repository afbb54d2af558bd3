# NixOS module: services.pullnix.
#
# Where things come from:
#   options.nix   the option list (plain data; also read by options-doc.nix for docs/options.md)
#   schema.nix    types, defaults and validation, all derived from shared/schema/config.schema.json
#   config.nix    option values -> /etc/pullnix/config.json
#   units.nix     the two systemd units (also rendered by the real-systemd test bed)
#   package.nix   the package, when pkgs has no `pullnix` (no overlay applied)
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
  schema = import ./schema.nix;
  inherit (import ./options.nix) decls;

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

  mkDecl =
    d:
    let
      kind = d.kind or null;
      n = schema.node d.key;
      description = d.description or (n.description or "");
      defaults =
        if d.loc == [ "build" "host" ] then
          {
            default = if config.networking.hostName != "" then config.networking.hostName else null;
            defaultText = lib.literalExpression d.defaultText;
          }
        else if d.loc == [ "gates" "vulnerabilities" "command" ] then
          {
            # Only when enabled: the store path would otherwise put vulnix into every system.
            default = if cfg.gates.vulnerabilities.enable then lib.getExe' pkgs.vulnix "vulnix" else n.default;
            defaultText = lib.literalExpression d.defaultText;
          }
        else if d.loc == [ "reboot" "bootloader" ] then
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
    if kind == "enable" then
      lib.mkEnableOption d.enableName
    else if kind == "package" then
      mkOption {
        type = types.package;
        default = pkgs.pullnix or (pkgs.callPackage ./package.nix { });
        defaultText = lib.literalExpression d.defaultText;
        inherit description;
      }
    else if kind == "settings" then
      mkOption {
        type = (pkgs.formats.json { }).type;
        default = { };
        inherit (d) example;
        inherit description;
      }
    else
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

  optionTree = builtins.foldl' (
    acc: d: lib.recursiveUpdate acc (lib.setAttrByPath d.loc (mkDecl d))
  ) { } decls;

  # ---- the config file ---------------------------------------------------------------------

  # Nix paths become strings; a path value for knownHostsFile is copied to the store here.
  cfgPlain = cfg // {
    repository = cfg.repository // {
      knownHostsFile =
        if cfg.repository.knownHostsFile == null then null else "${cfg.repository.knownHostsFile}";
    };
  };

  # The watcher's user is fixed by the units (units.nix): the config file names it (D20).
  configJSON = import ./config.nix cfgPlain // {
    watcher = {
      user = "pullnix-watcher";
    };
  };
  schemaProblems = schema.validate configJSON;

  # Pretty-printed (jq) so an operator can read /etc/pullnix/config.json.
  configFile = (pkgs.formats.json { }).generate "pullnix-config.json" configJSON;

  url = cfg.repository.url;
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

  fixedKeys = builtins.filter (k: cfg.settings ? ${k}) [
    "socketPath"
    "privateSocketPath"
    "stateDir"
    "watcher"
    "units"
    "paths"
  ];

  # What the schema cannot say about a check (the daemons refuse the same at config load).
  checkProblems = import ./check-definitions.nix {
    inherit (cfg) checks;
    verifyTimeoutSec = cfg.verify.timeoutSec;
  };

  keyIds = map (k: k.id) cfg.operators.keys;
  duplicateIds = lib.unique (builtins.filter (id: lib.count (x: x == id) keyIds > 1) keyIds);

  unitPath = [
    config.nix.package
    pkgs.git
    pkgs.openssh
    config.systemd.package
  ]
  # git runs gpg to check OpenPGP commit signatures (ssh-keygen, for SSH ones, is in openssh).
  ++ lib.optional (cfg.trust.mode != "off") pkgs.gnupg
  # grub-reboot for the trial boot's one-shot entry (bootctl is in systemd).
  ++ lib.optional (cfg.reboot.mode == "window" && cfg.reboot.bootloader == "grub") config.boot.loader.grub.package;

  unitEnvironment =
    # The watcher runs `nix build <checkout>#…`; flakes may not be enabled in nix.conf, and
    # NIX_CONFIG enables them for pullnix only instead of changing the machine's settings.
    optionalAttrs (cfg.build.mode == "flake") {
      NIX_CONFIG = "extra-experimental-features = nix-command flakes";
    }
    # Classic mode builds `<nixpkgs/nixos>`; services get no NIX_PATH of their own.
    // optionalAttrs (cfg.build.mode == "classic" && config.nix.nixPath != [ ]) {
      NIX_PATH = concatStringsSep ":" config.nix.nixPath;
    };
in
{
  options.services.pullnix = optionTree;

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = url != "";
        message = "services.pullnix.repository.url is empty: set it to the git remote holding this machine's configuration.";
      }
      {
        assertion = !(isSshUrl && cfg.repository.sshKeyFile != null && cfg.repository.knownHostsFile == null);
        message = ''
          services.pullnix.repository.sshKeyFile is set for the SSH remote "${url}", but
          services.pullnix.repository.knownHostsFile is not: pullnix checks host keys strictly and
          never trusts on first use. Pin the server's key once (ssh-keyscan, then compare the
          fingerprint with the one your git host publishes) and set knownHostsFile to that file.
        '';
      }
      {
        assertion = cfg.repository.sshKeyFile == null || isSshUrl;
        message = ''services.pullnix.repository.sshKeyFile is set, but repository.url "${url}" is not an SSH URL (ssh://… or user@host:path); the key would never be used.'';
      }
      {
        assertion = fixedKeys == [ ];
        message = "services.pullnix.settings must not set ${concatStringsSep ", " fixedKeys}: the socket, state directory and unit names are fixed by the module's systemd units.";
      }
      {
        assertion = duplicateIds == [ ];
        message = "services.pullnix.operators.keys: duplicate id(s) ${concatStringsSep ", " duplicateIds}; every key needs its own id.";
      }
      {
        assertion = cfg.trust.mode == "off" || cfg.trust.allowedSigners != [ ] || cfg.trust.openpgpKeys != [ ];
        message = ''services.pullnix.trust.mode is "${cfg.trust.mode}" but no key is trusted: set trust.allowedSigners (SSH keys) or trust.openpgpKeys (armored OpenPGP public keys), or every commit would be refused.'';
      }
      {
        assertion = checkProblems == [ ];
        message = "services.pullnix.checks:\n${concatMapStringsSep "\n" (p: "  - ${p}") checkProblems}";
      }
      {
        assertion = schemaProblems == [ ];
        message = ''
          services.pullnix: the generated /etc/pullnix/config.json does not satisfy the pullnix config schema:
          ${concatMapStringsSep "\n" (p: "  - ${p}") schemaProblems}
        '';
      }
    ];

    warnings =
      lib.optional (
        cfg.build.mode == "flake" && cfg.build.file != schema.default [ "build" "file" ]
      ) "services.pullnix.build.file is set but build.mode is \"flake\"; the file is only used in classic mode."
      ++ lib.optional (
        cfg.trust.since != null && cfg.trust.mode != "all"
      ) "services.pullnix.trust.since is set but trust.mode is \"${cfg.trust.mode}\"; the anchor is only used in mode \"all\".";

    users.groups.${cfg.operators.group} = { };

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
    # else (ProtectSystem=strict), so the directory is created for it: group pullnix-watcher.
    systemd.tmpfiles.rules = lib.optional (
      cfg.metrics.textfileDirectory != null
    ) "d ${cfg.metrics.textfileDirectory} 0775 root pullnix-watcher - -";

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
        cfg.metrics.textfileDirectory != null
      ) "-${cfg.metrics.textfileDirectory}";
    };
  };
}
