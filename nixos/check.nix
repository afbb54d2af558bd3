# CI checks of the plain Nix parts, evaluated by nixos/check.sh with
#   nix-instantiate --eval --strict --json nixos/check.nix
# Result: { failures = [ "..." ]; sampleConfig = {...}; fullConfig = {...}; units = { "<name>.service" = "<text>"; }; }
# An empty `failures` list means every check passed. Plain builtins only (CI has no nixpkgs).
let
  inherit (builtins)
    concatLists
    concatStringsSep
    elem
    filter
    foldl'
    map
    toJSON
    ;

  schema = import ./schema.nix;
  inherit (import ./options.nix) decls;

  expect = cond: msg: if cond then [ ] else [ msg ];

  # ---- the unit definitions ----------------------------------------------------------------
  unitArgs = {
    executorExec = "/opt/pullnix/bin/pullnix-executor";
    watcherExec = "/opt/pullnix/bin/pullnix-watcher";
    configFile = "/etc/pullnix/config.json";
    path = [ "/nix/var/nix/profiles/default" ];
  };
  units = import ./units.nix unitArgs;
  rendered = import ./render-units.nix unitArgs;
  ex = units.pullnix-executor;
  wa = units.pullnix-watcher;

  unitChecks =
    expect (ex.restartIfChanged == false) "units.nix: pullnix-executor must have restartIfChanged = false"
    ++ expect (wa.restartIfChanged == false) "units.nix: pullnix-watcher must have restartIfChanged = false"
    ++ expect ((ex.unitConfig.X-StopOnRemoval or null) == false) "units.nix: pullnix-executor must have unitConfig.X-StopOnRemoval = false"
    ++ expect (ex.serviceConfig.Restart == "always") "units.nix: pullnix-executor must have Restart=always"
    ++ expect (wa.serviceConfig.Restart == "always") "units.nix: pullnix-watcher must have Restart=always"
    ++ expect (ex.serviceConfig ? RestartSec && wa.serviceConfig ? RestartSec) "units.nix: both units need a RestartSec (no tight restart loop)"
    ++ expect (ex.serviceConfig.ExecStart == "/opt/pullnix/bin/pullnix-executor --config /etc/pullnix/config.json") "units.nix: executor ExecStart must be `<executorExec> --config <configFile>`"
    ++ expect (wa.serviceConfig.ExecStart == "/opt/pullnix/bin/pullnix-watcher --config /etc/pullnix/config.json") "units.nix: watcher ExecStart must be `<watcherExec> --config <configFile>`"
    ++ expect (ex.serviceConfig.RuntimeDirectory == [ "pullnix" "pullnix-watcher" ]) "units.nix: the executor owns RuntimeDirectory=pullnix (/run/pullnix/executor.sock) and pullnix-watcher (the watcher's socket)"
    ++ expect (wa.serviceConfig.User == "pullnix-watcher" && wa.serviceConfig.ProtectSystem == "strict" && wa.serviceConfig.CapabilityBoundingSet == "") "units.nix: the watcher runs as pullnix-watcher, ProtectSystem=strict, no capabilities"
    ++ expect (elem "pullnix-executor.service" wa.after && elem "pullnix-executor.service" wa.wants) "units.nix: the watcher wants and starts after the executor"
    ++ expect (!(wa ? requires || wa ? bindsTo || wa ? partOf)) "units.nix: the watcher must not Require/BindsTo/PartOf the executor (an executor restart would take it down)"
    ++ expect (
      builtins.attrNames rendered == [
        "pullnix-executor.service"
        "pullnix-watcher.service"
      ]
    ) "render-units.nix: must return exactly pullnix-executor.service and pullnix-watcher.service";

  # ---- the config file the module writes ---------------------------------------------------
  # services.pullnix.settings IS the file: every typed option (an entry of options.nix with a
  # `key`) at its key, with its value, plus any freeform key. These samples are built here the
  # same way from the declarations, without nixpkgs; the module itself is evaluated with the
  # real module system by nixos/eval/ (needs a nixpkgs lib, see check.sh).
  inherit (import ./attrpath.nix) getIn setIn;

  configDecls = filter (d: d ? key) decls;

  # The value an option has when a user sets only what is required: its declared default
  # (module-side, else the schema's). build.host is what the module computes from
  # networking.hostName.
  defaultOf =
    d:
    if d.key == [ "build" "host" ] then
      "edge-01"
    else if d ? default then
      d.default
    else
      (schema.node d.key).default or null;
  sampleConfig = foldl' (acc: d: setIn d.key (defaultOf d) acc) {
    repository.url = "git@github.com:example/machines.git";
  } (filter (d: d.key != [ "repository" "url" ]) configDecls);

  fullConfig = setIn [ "verify" "initialBackoffMs" ] 500 (
    setIn [ "repository" "sshKeyFile" ] "/etc/pullnix/deploy_key" (
      setIn [ "repository" "knownHostsFile" ] "/etc/pullnix/known_hosts" (
        setIn [ "operators" "keys" ] (getIn [ "operators" "keys" ] exampleConfig) sampleConfig
      )
    )
  );
  # Every option's example, set at once.
  exampleConfig = foldl' (acc: d: if d ? example then setIn d.key d.example acc else acc) sampleConfig configDecls;

  configChecks =
    map (p: "options.nix defaults: ${p}") (schema.validate sampleConfig)
    ++ map (p: "options.nix full sample: ${p}") (schema.validate fullConfig)
    ++ map (p: "options.nix examples: ${p}") (schema.validate exampleConfig)
    # The validator itself must reject what the daemons would reject.
    ++ expect (
      schema.validate (
        sampleConfig
        // {
          bogus = 1;
          repository = sampleConfig.repository // {
            url = "";
          };
        }
      ) != [ ]
    ) "schema.nix: validate must reject an unknown key and an empty URL"
    # Bad check definitions are refused with the check named (module.nix asserts this list is empty).
    ++ expect (
      import ./check-definitions.nix {
        verifyTimeoutSec = 30;
        checks = {
          ping = { type = "command"; argv = [ ]; timeoutSec = 10; };
          web = { type = "http"; url = null; timeoutSec = 60; };
          git = { type = "tcp"; host = "h"; port = 1; timeoutSec = 10; };
          ok = { type = "unit"; unit = "nginx.service"; timeoutSec = 10; };
        };
      } == [
        "services.pullnix.settings.checks.git: 'git' is the name of a built-in check"
        "services.pullnix.settings.checks.ping.argv must not be empty for a command check"
        "services.pullnix.settings.checks.web.url is required for a http check"
        "services.pullnix.settings.checks.web.timeoutSec (60) is longer than services.pullnix.settings.verify.timeoutSec (30)"
      ]
    ) "check-definitions.nix: must name an empty argv, a missing url, a timeout above verify.timeoutSec and a built-in name"
    # A URL that does not parse is refused by the schema's pattern (validate), naming the key.
    ++ expect (
      builtins.any (p: builtins.match "checks\\.web\\.url: .*does not match.*" p != null) (
        schema.validate (sampleConfig // { checks.web = { type = "http"; url = "not a url"; }; })
      )
    ) "schema.nix: must refuse checks.web.url = \"not a url\" naming the key"
    # Every option with a `key` names a key the schema knows (schema.node throws otherwise).
    ++ concatLists (
      map (d: expect ((builtins.tryEval (schema.node d.key)).success) "options.nix: settings.${concatStringsSep "." d.key} is not a key of the config schema") configDecls
    )
    # The entries without a key are exactly the three top-level options.
    ++ expect (
      map (d: d.loc) (filter (d: !(d ? key)) decls) == [
        [ "enable" ]
        [ "package" ]
        [ "settings" ]
      ]
    ) "options.nix: only enable, package and settings are declared outside settings";
in
{
  failures = unitChecks ++ configChecks;
  inherit sampleConfig fullConfig;
  units = rendered;
}
