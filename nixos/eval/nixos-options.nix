# STAND-IN for the NixOS options nixos/module.nix sets or reads: a module of option
# declarations shaped like NixOS's own, with NixOS's defaults where the module depends on them.
# Not NixOS: no activation, no unit files, no users are made. Every option declared here exists
# in nixpkgs, in the file named beside it (paths in NixOS/nixpkgs); an option NixOS does not
# declare must not be declared here, or the harness would hide an evaluation error the module
# has on a real machine (issue 22: boot.loader.grub.package was declared here, and is not NixOS's).
#
#   assertions, warnings      nixos/modules/misc/assertions.nix; NixOS throws the failed ones
#                             when building the system, the cases read the list.
#   users.groups, users.users nixos/modules/config/users-groups.nix: attribute sets of submodules;
#                             the fields NixOS knows (gid, members, isSystemUser, group, home, ...)
#                             are accepted freeform.
#   environment.etc           nixos/modules/system/etc/etc.nix: attribute set of submodules with
#                             `source`/`text`/`mode` freeform.
#   environment.systemPackages  nixos/modules/config/system-path.nix: list of packages.
#   systemd.package           nixos/modules/system/boot/systemd.nix: a package (the stand-in systemd).
#   systemd.services          nixos/modules/system/boot/systemd.nix: attribute set of submodules.
#                             `path` and `environment` are declared and behave as in NixOS
#                             (nixos/lib/systemd-lib.nix): every service's path gets coreutils,
#                             findutils, gnugrep, gnused and systemd.package appended (mkAfter), and
#                             environment.PATH is made from the path (bin directories, then sbin).
#                             The other service fields (serviceConfig, unitConfig, wantedBy, ...) are
#                             accepted freeform and merged as plain attribute sets.
#   networking.hostName       nixos/modules/tasks/network-interfaces.nix: a string, default "nixos".
#   nix.package               nixos/modules/services/system/nix-daemon.nix.
#   nix.settings              nixos/modules/config/nix.nix (NixOS/nixpkgs 0136356, `settings =
#                             mkOption`, ~l. 226-430): a submodule with freeformType
#                             semanticConfType (attrsOf of atoms or lists of atoms; modelled as
#                             attrsOf anything) and typed options, of which the ones pullnix's
#                             prebuilt source reads are declared here as nix.nix declares them:
#                             substituters (listOf str, no default), trusted-substituters (listOf
#                             str, default [ ]; "binary cache URLs that non-root users can use"),
#                             require-sigs (bool, default true), trusted-public-keys (listOf str,
#                             no default). nix.nix's own `config` (l. ~420-427, under nix.enable,
#                             true by default) sets trusted-public-keys = [ the cache.nixos.org
#                             key ] and substituters = mkAfter [ "https://cache.nixos.org/" ]:
#                             modelled below, so a module's additions must merge with them.
#                             Nix itself (src/libstore/daemon.cc, Nix 2.8.1 l. 211-227) lets a
#                             client that is not a trusted user use only the substituters listed
#                             in trusted-substituters or substituters ("ignoring untrusted
#                             substituter"), and ignores a restricted setting such as
#                             narinfo-cache-negative-ttl from it (l. 237-248).
#   nix.nixPath               nixos/modules/config/nix-channel.nix: list of strings, default the
#                             channel entries NixOS sets while nix.channel.enable is true.
#   systemd.tmpfiles.rules    nixos/modules/system/boot/systemd/tmpfiles.nix: list of strings.
#   documentation.enable      nixos/modules/misc/documentation.nix: boolean, not read (the VM
#                             test's machine sets it, with nix.settings).
#   boot.loader.systemd-boot.enable, boot.loader.systemd-boot.configurationLimit
#                             nixos/modules/system/boot/loader/systemd-boot/systemd-boot.nix:
#                             boolean (default false); null or an integer (default null: no limit).
#   boot.loader.grub.enable, .default, .users, .configurationLimit, .subEntryOptions
#                             nixos/modules/system/boot/loader/grub/grub.nix: enable defaults to
#                             !config.boot.isContainer (true here: no container); default is an
#                             integer or a string, applied with toString, default "0" ("saved"
#                             turns on savedefault); users an attribute set of accounts (default
#                             { }; with any, "all boot options except the default are
#                             password-protected"); configurationLimit an integer (default 100);
#                             subEntryOptions null or a string (default "--class nixos"). grub.nix
#                             declares no `package`: its GRUB is system.build.grub.
#   services.prometheus.exporters.node.{enable,enabledCollectors,extraFlags,user,group}
#                             what docs/metrics.md's example sets: nixpkgs'
#                             nixos/modules/services/monitoring/prometheus/exporters.nix
#                             (mkExporterOpts: enable = mkEnableOption, extraFlags listOf str
#                             default [ ], user and group str default "<name>-exporter") and
#                             exporters/node.nix (extraOpts.enabledCollectors listOf str default
#                             [ ]; serviceOpts DynamicUser = false, so it runs as the static user
#                             node-exporter, not root). No unit is made here.
#   documentation.enable      accepted (boolean) and not read: only the VM test's machine
#                             (nixos/tests/pullnix-machine.nix) sets it.
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
    boot.loader.systemd-boot.configurationLimit = mkOption {
      type = types.nullOr types.int;
      default = null;
    };
    boot.loader.grub.default = mkOption {
      type = types.either types.int types.str;
      apply = toString;
      default = "0";
    };
    boot.loader.grub.users = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = lib.genAttrs [ "hashedPassword" "hashedPasswordFile" "password" "passwordFile" ] (
            _: mkOption {
              type = types.nullOr types.str;
              default = null;
            }
          );
        }
      );
      default = { };
    };
    boot.loader.grub.configurationLimit = mkOption {
      type = types.int;
      default = 100;
    };
    boot.loader.grub.subEntryOptions = mkOption {
      type = types.nullOr types.str;
      default = "--class nixos";
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
      type = types.submodule {
        freeformType = freeform;
        options = {
          substituters = mkOption { type = types.listOf types.str; };
          trusted-substituters = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          require-sigs = mkOption {
            type = types.bool;
            default = true;
          };
          trusted-public-keys = mkOption { type = types.listOf types.str; };
        };
      };
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

  # nixos/modules/config/nix.nix's own config (NixOS/nixpkgs 0136356, the `config = mkIf
  # cfg.enable` block at its end; nix.enable defaults to true): the defaults a module's
  # nix.settings merge with.
  config.nix.settings = {
    trusted-public-keys = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
    substituters = lib.mkAfter [ "https://cache.nixos.org/" ];
  };
}
