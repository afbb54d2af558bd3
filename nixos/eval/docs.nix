# Evaluates one ```nix block of README.md or docs/ (extracted by docs-blocks.mjs) with nixpkgs'
# lib.evalModules, the module and the stand-ins of eval.nix, as a user's configuration would be.
#
# Arguments:
#   lib     nixpkgs' lib;
#   module  the module under test;
#   root    the pullnix source tree (what `builtins.fetchTarball` of pullnix's archive gives);
#   file    the block, written by docs-blocks.mjs as a Nix file;
#   kind    "flake": a flake.nix; its outputs are called with stand-in inputs:
#             nixpkgs.lib.nixosSystem = as nixpkgs' flake.nix defines it (`args: import
#             ./nixos/lib/eval-config.nix ({ inherit lib; } // args ...)`, eval-config.nix being
#             lib.evalModules over NixOS's modules plus `args.modules`): here lib.evalModules over
#             the stand-in NixOS options plus `args.modules`;
#             pullnix.nixosModules.default = the module (flake.nix of this repository);
#           "module": a NixOS module, evaluated with `base` (below) and, unless it imports
#             pullnix itself (`fetchTarball` of the archive), the module;
#           "fragment": attribute bindings (`services.pullnix.settings.x = ...;`), evaluated as
#             the module `{ <bindings> }`, with `base` and the module.
#   base: what step 1 of docs/nixos.md configures (pullnix enabled, the repository, the host name
#   edge-01), so a fragment is checked as part of a configuration that follows the guide.
#
# Result: { <configuration name> = { failures = [ ... ]; config = <config.json>; }; }: a block
# must evaluate (run.sh forces it), fail no assertion, give no warning, and declare no
# systemd-tmpfiles rule for a path another rule declares: systemd-tmpfiles keeps the first line for
# a path and ignores an incompatible later one ("Duplicate line for path …, ignoring.",
# systemd src/tmpfiles/tmpfiles.c, parse_line), so a user's rule can silently replace the module's.
{
  lib,
  module,
  root,
  file,
  kind,
}:
let
  pkgs = import ./pkgs.nix { inherit lib; };
  evalWith =
    modules:
    lib.evalModules {
      modules = [ ./nixos-options.nix ] ++ modules;
      specialArgs = { inherit pkgs; };
    };
  base = {
    networking.hostName = lib.mkDefault "edge-01";
    services.pullnix = {
      enable = true;
      settings.repository = {
        url = lib.mkDefault "git@github.com:example/machines.git";
        sshKeyFile = lib.mkDefault "/etc/pullnix/deploy_key";
        knownHostsFile = lib.mkDefault "/etc/pullnix/known_hosts";
      };
    };
  };
  # `builtins.fetchTarball "https://github.com/OWNER/pullnix/archive/main.tar.gz"` stands for this
  # tree: the block is a function of `builtins` (docs-blocks.mjs writes it so).
  block = import file { builtins = builtins // { fetchTarball = _: toString root; }; };
  importsPullnix = lib.hasInfix "builtins.fetchTarball" (builtins.readFile file);

  systems =
    if kind == "flake" then
      (block.outputs {
        self = { };
        nixpkgs.lib = lib // {
          nixosSystem = args: evalWith args.modules;
        };
        pullnix.nixosModules.default = module;
      }).nixosConfigurations
    else
      {
        "${kind}" = evalWith ([ base block ] ++ lib.optional (!importsPullnix) module);
      };

  failedAssertions = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  tmpfilesPaths = rules: map (r: builtins.elemAt (lib.splitString " " r) 1) rules;
  duplicates = xs: lib.unique (builtins.filter (x: lib.count (y: y == x) xs > 1) xs);
  configOf = c: builtins.fromJSON (builtins.unsafeDiscardStringContext c.environment.etc."pullnix/config.json".source.text);

  check =
    r:
    let
      c = r.config;
    in
    builtins.deepSeq (lib.mapAttrs (_: s: s.environment) c.systemd.services) {
      failures =
        map (m: "failed assertion: ${m}") (failedAssertions c)
        ++ map (w: "warning: ${w}") c.warnings
        ++ map (p: "two systemd.tmpfiles.rules for ${p}: systemd-tmpfiles applies the first and ignores the other") (duplicates (tmpfilesPaths c.systemd.tmpfiles.rules));
      config = if c.services.pullnix.enable then configOf c else null;
    };
in
lib.mapAttrs (_: check) systems
