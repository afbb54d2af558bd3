# STAND-IN for nixpkgs' `pkgs`, as far as nixos/module.nix uses it. Not nixpkgs: nothing here
# builds anything. What stands in for what:
#
#   git, openssh, gnupg, vulnix,     derivation-shaped attribute sets (type = "derivation", a
#   coreutils, findutils, gnugrep,   fixed fake outPath /nix/store/<hash>-<name>): enough for
#   gnused, nix, systemd             string interpolation, lib.getExe', lib.makeBinPath and
#                                    the `types.package` check, which is all the module does.
#   callPackage ./package.nix { }    the same kind of fake package, named
#                                    "pullnix-from-package-nix", so a case can tell that the
#                                    module fell back to building the package from this tree
#                                    (the real package.nix needs buildNpmPackage and the network).
#                                    Any other callPackage is refused.
#   formats.json { }                 `type` is built like nixpkgs' (pkgs-lib/formats.nix): the
#                                    recursive "JSON value" type, null or one of bool, int,
#                                    float, str, path, an attribute set of JSON values or a list
#                                    of them. `generate name value` is a fake derivation with the
#                                    JSON text in `text` (nixpkgs runs `jq .` over
#                                    builtins.toJSON value in a build; the content is the same
#                                    JSON, only pretty-printed).
#   path                             a fake nixpkgs source path (for messages that show it).
#
# Argument: lib (nixpkgs' lib), extra (attributes added to the set, e.g. { pullnix = ...; }
# for a machine that applies the pullnix overlay).
{
  lib,
  extra ? { },
}:
let
  inherit (lib) types;

  fakePackage =
    name:
    let
      # A store path's shape: 32 characters of hash (here of the name), then the name.
      outPath = "${builtins.storeDir}/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
    in
    {
      type = "derivation";
      inherit name outPath;
      drvPath = "${outPath}.drv";
      outputs = [ "out" ];
      outputName = "out";
      meta = { };
    };

  jsonValue =
    types.nullOr (
      types.oneOf [
        types.bool
        types.int
        types.float
        types.str
        types.path
        (types.attrsOf jsonValue)
        (types.listOf jsonValue)
      ]
    )
    // {
      description = "JSON value";
    };
in
{
  inherit fakePackage;
  path = "/nix/store/11111111111111111111111111111111-nixpkgs-source";

  git = fakePackage "git";
  openssh = fakePackage "openssh";
  gnupg = fakePackage "gnupg";
  vulnix = fakePackage "vulnix";
  coreutils = fakePackage "coreutils";
  findutils = fakePackage "findutils";
  gnugrep = fakePackage "gnugrep";
  gnused = fakePackage "gnused";
  nix = fakePackage "nix";
  systemd = fakePackage "systemd";
  grub2 = fakePackage "grub";

  callPackage =
    fn: args:
    if fn == ../package.nix && args == { } then
      fakePackage "pullnix-from-package-nix"
    else
      throw "eval/pkgs.nix (stand-in): callPackage ${toString fn} is not stood in for";

  formats.json = { }: {
    type = jsonValue;
    generate =
      name: value:
      fakePackage name
      // {
        text = builtins.toJSON value;
      };
  };
}
// extra
