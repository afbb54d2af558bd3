# The configuration repository of the machine under test (pullnix system test bed).
# No inputs, no nixpkgs: `toplevel` is a plain derivation standing in for a NixOS system (see
# generation.nix). The watcher builds exactly what it builds on NixOS:
#   nix build <checkout>#nixosConfigurations.bed.config.system.build.toplevel
{
  description = "pullnix system test bed: configuration repository";
  outputs =
    { self }:
    {
      nixosConfigurations.bed.config.system.build.toplevel = import ./generation.nix;
    };
}
