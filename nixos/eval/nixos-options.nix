# STAND-IN for the NixOS options nixos/module.nix sets or reads: a module of option
# declarations shaped like NixOS's own, with NixOS's defaults where the module depends on them.
# Not NixOS: no activation, no unit files, no users are made. What stands in for what:
#
#   assertions, warnings      as nixos/modules/misc/assertions.nix declares them; NixOS throws
#                             the failed ones when building the system, the cases read the list.
#   users.groups, users.users attribute sets of submodules; the fields NixOS knows (gid,
#                             members, isSystemUser, group, home, ...) are accepted freeform.
#   environment.etc           attribute set of submodules with `source`/`text`/`mode` freeform.
#   environment.systemPackages  list of packages.
#   systemd.package           a package (the stand-in systemd).
#   systemd.services          attribute set of submodules. `path` and `environment` are declared
#                             and behave as in NixOS (nixos/lib/systemd-lib.nix): every service's
#                             path gets coreutils, findutils, gnugrep, gnused and systemd.package
#                             appended (mkAfter), and environment.PATH is made from the path
#                             (bin directories, then sbin). The other service fields (serviceConfig,
#                             unitConfig, wantedBy, ...) are accepted freeform and merged as plain
#                             attribute sets, without NixOS's per-field types.
#   networking.hostName       a string, NixOS's default "nixos".
#   nix.package               a package (the stand-in nix).
#   nix.nixPath               list of strings, default the channel entries NixOS sets while
#                             nix.channel.enable is true (false makes it [ ]).
#   systemd.tmpfiles.rules    list of strings (NixOS: nixos/modules/system/boot/systemd/tmpfiles.nix).
#   boot.loader.systemd-boot.enable, boot.loader.grub.enable, boot.loader.grub.package
#                             booleans (NixOS's defaults: false, true) and a package: what the
#                             module reads to pick reboot.bootloader's default.
#   services.prometheus.exporters.node.{enable,enabledCollectors,extraFlags,user,group}
#                             what docs/metrics.md's example sets: nixpkgs'
#                             nixos/modules/services/monitoring/prometheus/exporters.nix
#                             (mkExporterOpts: enable = mkEnableOption, extraFlags listOf str
#                             default [ ], user and group str default "<name>-exporter") and
#                             exporters/node.nix (extraOpts.enabledCollectors listOf str default
#                             [ ]; serviceOpts DynamicUser = false, so it runs as the static user
#                             node-exporter, not root). No unit is made here.
#   nix.settings, documentation.enable
#                             accepted (attribute set / boolean) and not read: only the VM
#                             test's machine (nixos/tests/pullnix-machine.nix) sets them.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  freeform = types.attrsOf types.anything;
  submoduleOf = options: types.attrsOf (types.submodule { freeformType = freeform; inherit options; });
  # NixOS appends the configured systemd (systemd-lib.nix uses config.systemd.package).
  systemdPackage = config.systemd.package;
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    users.groups = mkOption {
      type = submoduleOf { };
      default = { };
    };
    users.users = mkOption {
      type = submoduleOf { };
      default = { };
    };
    environment.etc = mkOption {
      type = submoduleOf { };
      default = { };
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    systemd.package = mkOption {
      type = types.package;
      default = pkgs.systemd;
    };
    systemd.services = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule (
          { config, ... }:
          {
            freeformType = freeform;
            options.path = mkOption {
              type = types.listOf (types.either types.package types.str);
              default = [ ];
            };
            options.environment = mkOption {
              type = types.attrsOf (types.nullOr (types.either types.str types.package));
              default = { };
            };
            config.path = lib.mkAfter [
              pkgs.coreutils
              pkgs.findutils
              pkgs.gnugrep
              pkgs.gnused
              systemdPackage
            ];
            config.environment.PATH = lib.mkIf (config.path != [ ]) "${lib.makeBinPath config.path}:${lib.makeSearchPathOutput "bin" "sbin" config.path}";
          }
        )
      );
    };
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    services.prometheus.exporters.node = {
      enable = lib.mkEnableOption "the prometheus node exporter";
      enabledCollectors = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      extraFlags = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      user = mkOption {
        type = types.str;
        default = "node-exporter";
      };
      group = mkOption {
        type = types.str;
        default = "node-exporter";
      };
    };
    boot.loader.systemd-boot.enable = mkOption {
      type = types.bool;
      default = false;
    };
    boot.loader.grub.enable = mkOption {
      type = types.bool;
      default = true;
    };
    boot.loader.grub.package = mkOption {
      type = types.package;
      default = pkgs.grub2;
    };
    networking.hostName = mkOption {
      type = types.str;
      default = "nixos";
    };
    nix.package = mkOption {
      type = types.package;
      default = pkgs.nix;
    };
    nix.settings = mkOption {
      type = freeform;
      default = { };
    };
    documentation.enable = mkOption {
      type = types.bool;
      default = true;
    };
    nix.nixPath = mkOption {
      type = types.listOf types.str;
      default = [
        "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos"
        "nixos-config=/etc/nixos/configuration.nix"
        "/nix/var/nix/profiles/per-user/root/channels"
      ];
    };
  };
}
