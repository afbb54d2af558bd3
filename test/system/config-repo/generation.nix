# One "NixOS generation" of the test machine, described by generation.json (written by the test
# for each commit). The output has the shape pullnix relies on:
#   $out/nixos-version, $out/init-interface-version
#   $out/kernel, $out/initrd, $out/kernel-modules (links into the generation's "kernel" package)
#   $out/bin/switch-to-configuration      (the bed's stand-in, switch-to-configuration.sh)
#   $out/activate                         (the activation script, activate.sh; $out/activation-fails
#                                          makes one of its snippets fail: exit 2 of the switch)
#   $out/etc/systemd/system/*.service     (+ multi-user.target.wants/ links, as NixOS makes them)
#   $out/etc/pullnix/config.json          (+ other etc files)
#   $out/sw/bin/pullnix-ctl               (environment.systemPackages)
# The pullnix units are NOT written here: they are rendered by the project's own
# nixos/render-units.nix (copied into this repository by the test as pullnix-nixos/), so the
# units under test are the units NixOS users get.
let
  spec = builtins.fromJSON (builtins.readFile ./generation.json);
  inherit (spec) system;
  # The daemons' V8 flags, as nixos/package.nix puts them into the package's wrappers.
  nodeFlags = builtins.fromJSON (builtins.readFile ./pullnix-nixos/node-flags.json);

  # The pullnix "package": tiny wrappers running the project's compiled entry points (bound
  # read-only into the container at /opt/pullnix) with Node 22 (/opt/node/bin/node). The version
  # string is part of the output, so a new version is a new store path: new pullnix units.
  pullnix = derivation {
    name = "pullnix-${spec.pullnixVersion}";
    inherit system;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    version = spec.pullnixVersion;
    brokenStart = if (spec.brokenStart or null) == null then "" else spec.brokenStart;
    args = [
      "-c"
      ''
        set -e
        mkdir -p $out/bin
        wrap() {
          printf '#!/bin/sh\n# pullnix %s (system test bed package)\nexport PULLNIX_BED_PACKAGE=%s\n' "$version" "$out" > $out/bin/$1
          # A package broken at start (spec.brokenStart): the daemon's --check-config works, its
          # start does not (as with a library loaded only at start): what --check-config cannot see.
          if [ "$1" = "$brokenStart" ]; then
            printf '[ "$1" = --check-config ] || { echo "%s: cannot start: broken package (bed)" >&2; exit 1; }\n' "$1" >> $out/bin/$1
          fi
          printf 'exec /opt/node/bin/node %s/opt/pullnix/%s "$@"\n' "$3" "$2" >> $out/bin/$1
          chmod 0555 $out/bin/$1
        }
        wrap pullnix-executor executor/dist/src/main.js '${builtins.concatStringsSep " " nodeFlags.executor} '
        wrap pullnix-watcher watcher/dist/src/main.js '${builtins.concatStringsSep " " nodeFlags.watcher} '
        wrap pullnix-ctl executor/dist/src/ctl/main.js ""
      ''
    ];
  };

  pullnixUnits = import ./pullnix-nixos/render-units.nix {
    executorExec = "${pullnix}/bin/pullnix-executor";
    watcherExec = "${pullnix}/bin/pullnix-watcher";
    configFile = "/etc/pullnix/config.json";
    # /bed/boot-tools first: the bed's bootctl (its emulated bootloader), like systemd's on NixOS.
    path = [ "/bed/boot-tools" "/usr" ];
    # As the module does: the watcher may write the metrics textfile directory, nothing else.
    watcherReadWritePaths =
      let dir = ((spec.config.metrics or { }).textfileDirectory or null); in
      if spec.pullnix && dir != null then [ "-${dir}" ] else [ ];
  };

  # The git server the machine deploys from: sshd on 127.0.0.1, owned by the generation, so a
  # generation without it "breaks the network" and a rollback must bring it back.
  gitServerUnits = if spec.gitServer then {
    "bed-git-sshd.service" = ''
      [Unit]
      Description=bed git server (sshd on 127.0.0.1:22, read-only deploy key)

      [Service]
      Type=notify
      ExecStart=/usr/sbin/sshd -D -e -f /etc/bed-git/sshd_config
      RuntimeDirectory=sshd
      RuntimeDirectoryMode=0755

      [Install]
      WantedBy=multi-user.target
    '';
  } else { };

  units = (if spec.pullnix then pullnixUnits else { }) // gitServerUnits // spec.extraUnits;

  # The generation's "kernel": a package of its own per version (a marker, not a Linux), so two
  # generations with the same kernel share the store paths of kernel, initrd and kernel-modules,
  # exactly what pullnix compares with /run/booted-system's.
  kernel = derivation {
    name = "bed-linux-${spec.kernel or "6.6"}";
    inherit system;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" "mkdir -p $out/lib/modules && echo 'bed kernel ${spec.kernel or "6.6"}' > $out/bzImage && echo 'bed initrd ${spec.kernel or "6.6"}' > $out/initrd" ];
  };

  # The generation's "packages" (the vulnerability gate's scenario): one tiny derivation named
  # <name>-<version> each, linked from $out/sw/pkgs, so they are in the runtime closure vulnix
  # (the stand-in: nix-store -qR) looks at.
  packages = map (n: derivation {
    name = "${n}-${spec.packages.${n}}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "echo ${n} > $out" ];
  }) (builtins.attrNames (spec.packages or { }));

  etcFiles = (if spec.pullnix then { "pullnix/config.json" = builtins.toJSON spec.config; } else { }) // {
    "bed-git/sshd_config" = ''
      ListenAddress 127.0.0.1
      Port 22
      HostKey /srv/gitserver/ssh_host_ed25519_key
      AuthorizedKeysFile /srv/gitserver/authorized_keys
      PasswordAuthentication no
      KbdInteractiveAuthentication no
      UsePAM no
      PidFile none
      AcceptEnv GIT_PROTOCOL
      LogLevel VERBOSE
    '';
  } // spec.extraEtc;

  indexed = set: builtins.genList (i: let n = builtins.elemAt (builtins.attrNames set) i; in { name = n; text = set.${n}; }) (builtins.length (builtins.attrNames set));
  unitList = indexed units;
  etcList = indexed etcFiles;
  vars = prefix: list:
    builtins.listToAttrs (builtins.concatLists (builtins.genList (i: [
      { name = "${prefix}_${toString i}_name"; value = (builtins.elemAt list i).name; }
      { name = "${prefix}_${toString i}_text"; value = (builtins.elemAt list i).text; }
    ]) (builtins.length list)));
  textVars = prefix: list: builtins.genList (i: "${prefix}_${toString i}_text") (builtins.length list);

  toplevel = derivation ({
    name = "nixos-system-bed-${spec.label}";
    inherit system;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    nixosVersion = "26.05.bed-${spec.label}";
    broken = if spec.broken == null then "" else spec.broken;
    activationFails = if spec.activationFails == null then "" else spec.activationFails;
    initInterface = spec.initInterface;
    bootInstallDelay = toString spec.bootInstallDelaySec;
    # The machine's bootloader settings (boot.loader.* on NixOS), read by the bed's installer.
    bootloaderJson = builtins.toJSON spec.bootloader;
    activate = ./activate.sh;
    unitCount = toString (builtins.length unitList);
    etcCount = toString (builtins.length etcList);
    stc = ./switch-to-configuration.sh;
    inherit pullnix packages kernel;
    passAsFile = textVars "unit" unitList ++ textVars "etc" etcList;
    args = [
      "-c"
      ''
        set -e
        if [ -n "$broken" ]; then
          echo "error: $broken" >&2
          exit 1
        fi
        mkdir -p $out/bin $out/etc/systemd/system/multi-user.target.wants $out/sw/bin
        printf '%s\n' "$nixosVersion" > $out/nixos-version
        printf '%s\n' "$initInterface" > $out/init-interface-version
        printf '%s\n' "$bootloaderJson" > $out/bed-bootloader.json
        if [ "$bootInstallDelay" != 0 ]; then printf '%s\n' "$bootInstallDelay" > $out/boot-install-delay; fi
        ln -s $kernel/bzImage $out/kernel
        ln -s $kernel/initrd $out/initrd
        ln -s $kernel/lib/modules $out/kernel-modules
        cp $stc $out/bin/switch-to-configuration
        chmod 0555 $out/bin/switch-to-configuration
        cp $activate $out/activate
        chmod 0555 $out/activate
        if [ -n "$activationFails" ]; then printf '%s\n' "$activationFails" > $out/activation-fails; fi
        for b in pullnix-ctl pullnix-executor pullnix-watcher; do ln -s $pullnix/bin/$b $out/sw/bin/$b; done
        mkdir -p $out/sw/pkgs
        for p in $packages; do ln -s $p $out/sw/pkgs/; done
        i=0
        while [ $i -lt $unitCount ]; do
          eval "name=\$unit_''${i}_name; file=\$unit_''${i}_textPath"
          cp "$file" "$out/etc/systemd/system/$name"
          if grep -q '^WantedBy=.*multi-user.target' "$file"; then
            ln -s "../$name" "$out/etc/systemd/system/multi-user.target.wants/$name"
          fi
          i=$((i+1))
        done
        i=0
        while [ $i -lt $etcCount ]; do
          eval "name=\$etc_''${i}_name; file=\$etc_''${i}_textPath"
          mkdir -p "$(dirname "$out/etc/$name")"
          cp "$file" "$out/etc/$name"
          i=$((i+1))
        done
      ''
    ];
  } // vars "unit" unitList // vars "etc" etcList);
in
toplevel
