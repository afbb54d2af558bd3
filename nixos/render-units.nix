# Renders the pullnix units (nixos/units.nix) to unit-file TEXT, exactly as nixpkgs'
# nixos/lib/systemd-lib.nix (serviceToUnit, commonUnitText, attrsToSection, and the unitConfig /
# serviceConfig modules that fill [Unit] and PATH) does for the keys units.nix uses.
# Plain builtins: no nixpkgs needed. Used by the real-systemd test bed and by nixos/check.sh.
#
# CALLING CONVENTION (stable; the test bed depends on it):
#
#   nix-instantiate --eval --strict --json -E 'import /path/to/nixos/render-units.nix {
#     executorExec = "/opt/node/bin/node /src/executor/dist/src/main.js";  # required
#     watcherExec  = "/opt/node/bin/node /src/watcher/dist/src/main.js";   # required
#     configFile   = "/etc/pullnix/config.json";                           # required
#     path         = [ "/usr" "/nix/var/nix/profiles/default" ];           # optional, default [ ]
#     environment  = { NODE_OPTIONS = "--enable-source-maps"; };           # optional, default { }
#   }'
#
#   prints one JSON object:
#   { "pullnix-executor.service": "<unit file text>", "pullnix-watcher.service": "<unit file text>" }
#
#   executorExec / watcherExec: the command that starts the daemon (systemd ExecStart syntax, may
#     contain arguments); ` --config <configFile>` is appended.
#   path: each element P contributes P/bin and P/sbin to PATH, in NixOS order
#     (all the /bin directories first, then all the /sbin ones), rendered as
#     Environment="PATH=...". Empty list: no PATH line (systemd's default PATH applies).
#     On NixOS the module passes nix, git and openssh (and gnupg when commits are checked), and NixOS
#     appends coreutils, findutils, gnugrep, gnused and systemd itself; the test bed chooses its own.
#   environment: extra Environment= lines for both units (NixOS: systemd.services.<n>.environment).
#     NixOS also adds systemd.globalEnvironment (LOCALE_ARCHIVE, TZDIR); that is not rendered here.
#
# Anything else in the argument set is passed on to units.nix (which ignores unknown keys).
# What a real NixOS renders differently: only the PATH contents and globalEnvironment lines
# described above; section layout, key order and value formatting are the same.
args:
let
  units = import ./units.nix args;

  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    filter
    isAttrs
    isList
    isBool
    map
    toJSON
    ;

  # systemd-lib.nix: toOption
  toOption =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;

  # systemd-lib.nix: attrsToSection. Keys in attrNames order (byte order, as mapAttrsToList);
  # a list value gives one line per element.
  attrsToSection =
    as:
    concatStringsSep "" (
      concatLists (
        map (
          name:
          let
            value = as.${name};
          in
          map (x: "${name}=${toOption x}\n") (if isList value then value else [ value ])
        ) (attrNames as)
      )
    );

  optionalAttrs = cond: as: if cond then as else { };
  optionalString = cond: s: if cond then s else "";

  # lib.makeSearchPath / makeBinPath on plain strings (or packages, via their outPath).
  makeSearchPath =
    sub: paths: concatStringsSep ":" (map (p: "${toString p}/${sub}") (filter (p: p != null) paths));

  # systemd-lib.nix: unitConfig module. The list options become [Unit] keys (space-separated),
  # then the unit's own unitConfig is merged in.
  unitSection =
    def:
    let
      listKey =
        key: opt:
        optionalAttrs ((def.${opt} or [ ]) != [ ]) { ${key} = concatStringsSep " " def.${opt}; };
    in
    listKey "Requires" "requires"
    // listKey "Wants" "wants"
    // listKey "Upholds" "upholds"
    // listKey "After" "after"
    // listKey "Before" "before"
    // listKey "BindsTo" "bindsTo"
    // listKey "PartOf" "partOf"
    // listKey "Conflicts" "conflicts"
    // listKey "Requisite" "requisite"
    // optionalAttrs ((def.description or "") != "") { Description = def.description; }
    // listKey "Documentation" "documentation"
    // listKey "OnFailure" "onFailure"
    // listKey "OnSuccess" "onSuccess"
    // (def.unitConfig or { });

  # systemd-lib.nix: serviceConfig module (environment.PATH from path) and serviceToUnit.
  serviceText =
    def:
    let
      path = def.path or [ ];
      env =
        (def.environment or { })
        // optionalAttrs (path != [ ]) {
          PATH = "${makeSearchPath "bin" path}:${makeSearchPath "sbin" path}";
        };
      envLines = concatStringsSep "" (
        map (n: optionalString (env.${n} != null) "Environment=${toJSON "${n}=${env.${n}}"}\n") (
          attrNames env
        )
      );
      wantedBy = def.wantedBy or [ ];
    in
    # commonUnitText
    ''
      [Unit]
      ${attrsToSection (unitSection def)}
    ''
    + ''
      [Service]
    ''
    + envLines
    + (
      if (def.reloadIfChanged or false) then
        ''
          X-ReloadIfChanged=true
        ''
      else if !(def.restartIfChanged or true) then
        ''
          X-RestartIfChanged=false
        ''
      else
        ""
    )
    + optionalString (!(def.stopIfChanged or true)) ''
      X-StopIfChanged=false
    ''
    + optionalString (def.notSocketActivated or false) ''
      X-NotSocketActivated=true
    ''
    + attrsToSection (def.serviceConfig or { })
    + optionalString (wantedBy != [ ]) ''

      [Install]
      WantedBy=${concatStringsSep " " wantedBy}
    '';
in
{
  "pullnix-executor.service" = serviceText units.pullnix-executor;
  "pullnix-watcher.service" = serviceText units.pullnix-watcher;
}
