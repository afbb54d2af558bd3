# Evaluates nixos/module.nix with nixpkgs' lib.evalModules, the stand-in NixOS options
# (nixos-options.nix) and the stand-in pkgs (pkgs.nix).
#
# Arguments: lib (nixpkgs' lib, e.g. import /path/to/nixpkgs/lib), module (the module under
# test; another path evaluates another version of it, e.g. an older checkout).
{
  lib,
  module ? ../module.nix,
}:
{
  # modules: the case's own modules; pkgsExtra: attributes added to the stand-in pkgs.
  # Result: what lib.evalModules returns ({ config, options, ... }).
  eval =
    {
      modules,
      pkgsExtra ? { },
    }:
    lib.evalModules {
      modules = [
        ./nixos-options.nix
        module
      ]
      ++ modules;
      specialArgs.pkgs = import ./pkgs.nix {
        inherit lib;
        extra = pkgsExtra;
      };
    };
}
