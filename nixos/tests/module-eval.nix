# Evaluates nixos/module.nix with the real NixOS module system (nixpkgs' lib) and small stand-ins
# for the few NixOS options it touches, and checks option types, assertions and the unit
# contracts.
#
# NEEDS NIXPKGS' LIB; NOT RUN IN CI (CI has no nixpkgs). Run it where nixpkgs is available:
#   nix-instantiate --eval --strict --json nixos/tests/module-eval.nix --arg lib 'import <nixpkgs/lib>'
#   nix-instantiate --eval --strict --json nixos/tests/module-eval.nix --arg lib 'import /path/to/nixpkgs/lib'
# Result: { ok = true|false; failures = [ ... ]; configJSON = <the minimal case's config file>; }
{ lib }:
let
  inherit (lib) types mkOption;

  fakePkg = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    drvPath = "/nix/store/00000000000000000000000000000000-${name}.drv";
  };

  # Stand-ins for the parts of pkgs the module uses.
  pkgs = {
    git = fakePkg "git";
    openssh = fakePkg "openssh";
    gnupg = fakePkg "gnupg";
    vulnix = fakePkg "vulnix";
    callPackage = _: _: fakePkg "pullnix";
    formats.json = _: {
      type = types.attrsOf types.anything;
      generate = name: value: fakePkg name // { text = builtins.toJSON value; };
    };
  };

  # Stand-ins for the NixOS options the module sets or reads.
  nixosStubs = {
    options = {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      users.groups = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
      users.users = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
      systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
      environment.etc = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
      environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
      systemd.services = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
      systemd.package = mkOption { type = types.package; default = fakePkg "systemd"; };
      networking.hostName = mkOption { type = types.str; default = "edge-01"; };
      nix.package = mkOption { type = types.package; default = fakePkg "nix"; };
      nix.nixPath = mkOption { type = types.listOf types.str; default = [ "nixpkgs=/nix/store/11111111111111111111111111111111-source" ]; };
    };
  };

  evalWith =
    pullnix:
    (lib.evalModules {
      modules = [
        nixosStubs
        ../module.nix
        { services.pullnix = pullnix; }
      ];
      specialArgs = { inherit pkgs; };
    }).config;

  failedAssertions = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);

  minimal = {
    enable = true;
    repository.url = "git@github.com:example/machines.git";
    repository.sshKeyFile = "/etc/pullnix/deploy_key";
    repository.knownHostsFile = "/etc/pullnix/known_hosts";
  };
  c = evalWith minimal;
  ex = c.systemd.services.pullnix-executor;
  wa = c.systemd.services.pullnix-watcher;
  configJSON = builtins.fromJSON c.environment.etc."pullnix/config.json".source.text;

  check = cond: msg: if cond then [ ] else [ msg ];

  # The vulnerability gate: nixpkgs' vulnix only when enabled (else vulnix would be in every system).
  gateConfig = builtins.fromJSON (evalWith (minimal // { gates.vulnerabilities = { enable = true; minSeverity = 9; allow = [ "CVE-2023-4863" ]; }; })).environment.etc."pullnix/config.json".source.text;

  # An assertion message containing `text` must fire for these settings.
  assertionFires =
    name: settings: text:
    let
      msgs = failedAssertions (evalWith (minimal // settings));
    in
    check (builtins.any (m: lib.hasInfix text m) msgs) "${name}: expected an assertion mentioning \"${text}\", got ${builtins.toJSON msgs}";

  # These settings must be refused by an option type (an evaluation error).
  typeRefuses =
    name: settings:
    let
      r = builtins.tryEval (builtins.deepSeq (evalWith (minimal // settings)).environment.etc true);
    in
    check (!r.success) "${name}: expected an option type error, but it evaluated";

  failures =
    check (failedAssertions c == [ ]) "minimal: assertions failed: ${builtins.toJSON (failedAssertions c)}"
    ++ check (ex.restartIfChanged == false && wa.restartIfChanged == false) "units: restartIfChanged must be false on both"
    ++ check (wa.serviceConfig.User == "pullnix-watcher" && c.users.users ? pullnix-watcher && c.users.groups ? pullnix-watcher && configJSON.watcher.user == "pullnix-watcher") "the watcher runs as pullnix-watcher, created by the module and named in the config file"
    ++ check (ex.unitConfig.X-StopOnRemoval == false) "units: executor X-StopOnRemoval must be false"
    ++ check (ex.serviceConfig.Restart == "always" && wa.serviceConfig.Restart == "always") "units: Restart=always on both"
    ++ check (lib.hasSuffix "/bin/pullnix-executor --config /nix/store/00000000000000000000000000000000-pullnix-config.json" ex.serviceConfig.ExecStart) "units: executor ExecStart"
    ++ check (builtins.length ex.path == 4) "units: path holds nix, git, openssh, systemd"
    ++ check (c.users.groups ? pullnix) "the operator group is created"
    ++ check (configJSON.build.host == "edge-01") "build.host defaults to networking.hostName"
    ++ check (configJSON.repository.knownHostsFile == "/etc/pullnix/known_hosts") "knownHostsFile written as given"
    ++ assertionFires "empty url" { repository = minimal.repository // { url = ""; }; } "repository.url is empty"
    ++ assertionFires "ssh key without known hosts" {
      repository = minimal.repository // { knownHostsFile = null; };
    } "knownHostsFile is not"
    ++ assertionFires "ssh key on an https url" {
      repository = minimal.repository // { url = "https://example.org/m.git"; knownHostsFile = null; };
    } "is not an SSH URL"
    ++ assertionFires "fixed keys in settings" { settings.socketPath = "/tmp/x.sock"; } "must not set socketPath"
    ++ assertionFires "unknown key in settings" { settings.verify.bogus = 1; } "verify.bogus: unknown key"
    ++ assertionFires "out-of-range value in settings" { settings.verify.initialBackoffMs = 1; } "verify.initialBackoffMs: must be at least 10"
    ++ assertionFires "duplicate operator ids" {
      operators.keys = [
        { id = "a"; publicKey = "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; }
        { id = "a"; publicKey = "ed25519:BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; }
      ];
    } "duplicate id"
    ++ assertionFires "trust without keys" { trust.mode = "all"; } "no key is trusted"
    ++ (
      let
        t = evalWith (minimal // {
          trust = {
            mode = "all";
            allowedSigners = [ { principal = "alice@example.org"; key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzDE2z/V2SYGvswcsj7bLop/tZMNbwND9+L+pykS7Nn"; } ];
          };
        });
        tj = builtins.fromJSON t.environment.etc."pullnix/config.json".source.text;
      in
      check (failedAssertions t == [ ]) "trust with an SSH key: assertions failed: ${builtins.toJSON (failedAssertions t)}"
      ++ check (tj.trust.allowedSigners == [ { principal = "alice@example.org"; key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJzDE2z/V2SYGvswcsj7bLop/tZMNbwND9+L+pykS7Nn"; validAfter = null; validBefore = null; } ]) "trust.allowedSigners written with null windows"
      ++ check (builtins.length t.systemd.services.pullnix-watcher.path == 5) "trust on: gnupg joins the units' path"
    )
    ++ typeRefuses "ssh key with a comment" { trust.allowedSigners = [ { principal = "a"; key = "ssh-ed25519 AAAA alice@laptop"; } ]; }
    ++ typeRefuses "a private OpenPGP key" { trust.openpgpKeys = [ "-----BEGIN PGP PRIVATE KEY BLOCK-----\n" ]; }
    ++ typeRefuses "absolute classic file" { build = { mode = "classic"; file = "/etc/nixos/configuration.nix"; }; }
    ++ typeRefuses "ssh public key instead of a pullnix key" { operators.keys = [ { id = "a"; publicKey = "ssh-ed25519 AAAA"; } ]; }
    ++ typeRefuses "private key as a Nix path" { repository = minimal.repository // { sshKeyFile = ./module-eval.nix; }; }
    ++ typeRefuses "poll interval 0" { poll.intervalSec = 0; }
    ++ typeRefuses "unknown activation mode" { activation = "boot"; }
    ++ check (configJSON.gates.vulnerabilities.enable == false && configJSON.gates.vulnerabilities.command == "vulnix") "gate off by default, command not a store path"
    ++ check (gateConfig.gates.vulnerabilities.command == "/nix/store/00000000000000000000000000000000-vulnix/bin/vulnix") "gate on: command is nixpkgs' vulnix, got ${gateConfig.gates.vulnerabilities.command}"
    ++ check (gateConfig.gates.vulnerabilities.minSeverity == 9 && gateConfig.gates.vulnerabilities.onError == "allow") "gate settings written with their defaults"
    ++ typeRefuses "minSeverity above 10" { gates.vulnerabilities.minSeverity = 10.5; }
    ++ typeRefuses "an allow entry that is not a CVE id" { gates.vulnerabilities.allow = [ "openssl" ]; }
    ++ typeRefuses "unknown onError" { gates.vulnerabilities.onError = "ignore"; };
in
{
  ok = failures == [ ];
  inherit failures configJSON;
}
