{
  description = "pullnix: a NixOS machine deploys itself from git, verifies that it can still reach git, and rolls back if not";

  # The only input. Machines normally make it follow their own nixpkgs:
  #   inputs.pullnix.inputs.nixpkgs.follows = "nixpkgs";
  # No flake.lock is committed yet: it can only be written by `nix flake lock` with network
  # access (it records the revision and NAR hash of nixpkgs), which the machines this was
  # written on do not have. Run `nix flake lock` once and commit the result.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        pullnix = pkgs.callPackage ./nixos/package.nix { };
        default = pullnix;
      });

      overlays.default = final: prev: {
        pullnix = final.callPackage ./nixos/package.nix { };
      };

      # The module builds the package with the machine's own nixpkgs (pkgs.pullnix when the
      # overlay is applied, otherwise nixos/package.nix); nothing here pins a second nixpkgs.
      nixosModules.default = ./nixos/module.nix;
      nixosModules.pullnix = ./nixos/module.nix;

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        # A real NixOS VM test: a git server, a machine running pullnix, a good commit deployed,
        # a connectivity-breaking commit rolled back. Needs KVM (`nix flake check` on NixOS).
        vm = pkgs.testers.runNixOSTest (import ./nixos/tests/vm.nix { inherit pkgs; });
      });
    };
}
