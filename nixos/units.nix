# The two pullnix systemd units, defined once.
#
# Plain Nix (builtins only, no nixpkgs lib), so that both users of these definitions get the
# same units:
#   - nixos/module.nix assigns the result to `systemd.services` as is;
#   - the real-systemd test bed (test/system/) renders it to unit files with
#     nixos/render-units.nix, which mirrors nixpkgs' serviceToUnit.
#
# The result uses the NixOS `systemd.services.<name>` option vocabulary (description, wantedBy,
# wants, after, path, environment, restartIfChanged, unitConfig, serviceConfig) and nothing else,
# so render-units.nix only has to know those keys.
#
# Arguments:
#   executorExec  command that starts the executor, without arguments, e.g.
#                 "${pkg}/bin/pullnix-executor" or, in the test bed,
#                 "/opt/node/bin/node /src/executor/dist/src/main.js" (systemd ExecStart syntax).
#   watcherExec   the same for the watcher.
#   configFile    absolute path of the JSON config file; both daemons get `--config <configFile>`.
#   path          list of packages (NixOS) or store/prefix paths (strings) whose bin/ and sbin/
#                 go on PATH. NixOS itself appends coreutils, findutils, gnugrep, gnused and
#                 systemd to every service's path; the module does not repeat them.
#   environment   extra environment variables for both units (attrset of strings).
#
# Contracts (../shared/DESIGN.md), each relied on by the executor's pipeline:
#   - executor: restartIfChanged = false (switch-to-configuration leaves it running, so a
#     switch never kills the process doing the switch), X-StopOnRemoval=false (a configuration
#     that no longer contains it does not stop it mid-deployment), Restart=always (the
#     executor exits cleanly after a deployment that changed its own unit, and systemd starts
#     the new one: that is how pullnix upgrades itself).
#   - watcher: restartIfChanged = false (the executor restarts it after every outcome, so it
#     always runs the code of the live generation, and never mid-deployment), X-StopOnRemoval=
#     false (the executor stops both units once a deployment that removes pullnix is recorded),
#     Restart=always.
#   - neither unit may crash-loop into a dead state: RestartSec spaces restarts and
#     StartLimitIntervalSec=0 turns off systemd's start rate limit, so a broken release keeps
#     being retried (slowly) instead of being given up on until the next boot.
{
  executorExec,
  watcherExec,
  configFile,
  path ? [ ],
  environment ? { },
  ...
}:
let
  args = "--config ${configFile}";

  # Options that hold for both daemons and are safe for a root process that runs nix, git,
  # ssh and systemctl. Each one is argued below; options that are NOT set are listed at the end.
  common = {
    # Type=exec: the start job fails if the binary cannot be executed (missing store path,
    # wrong interpreter) instead of reporting "started" and failing a moment later.
    Type = "exec";
    Restart = "always";
    # /var/lib/pullnix: state, history, keys, the watcher's checkout and GC roots. Both units
    # declare it with the same mode (two different modes would make them fight on every start).
    # 0700: nothing in it is for anyone but root; operators use the socket, not these files.
    StateDirectory = "pullnix";
    StateDirectoryMode = "0700";
    # personality(2) changes and realtime scheduling are never needed by Node, git, ssh or nix;
    # these only remove abilities no part of the job uses.
    LockPersonality = true;
    RestrictRealtime = true;
  };
in
{
  pullnix-executor = {
    description = "pullnix executor: switches this machine to a built system, verifies it, rolls back";
    wantedBy = [ "multi-user.target" ];
    # After the clock is synchronised (where a time-sync service provides the target): the
    # executor refuses requests whose issuedAt is more than 30 s from its clock, and the
    # watcher's requests are stamped with the same clock. A request's validity for one executor
    # run is bound by a run id, not by the clock (docs/decisions.md D15), so a step after start
    # does not lock anyone out; starting after the first sync just avoids that step.
    after = [ "time-sync.target" ];
    inherit path environment;
    # Left alone by switch-to-configuration (X-RestartIfChanged=false): the executor is the
    # process running the switch.
    restartIfChanged = false;
    unitConfig = {
      # A configuration that drops pullnix must not stop the executor while it is switching
      # to that configuration: it records the outcome, then stops the watcher and itself
      # (systemctl stop, so Restart= does not bring it back).
      X-StopOnRemoval = false;
      # No start rate limit: with RestartSec below, restarts are spaced anyway, and a limit
      # would leave a machine without its deployment agent after a burst of failures.
      StartLimitIntervalSec = 0;
    };
    serviceConfig = common // {
      ExecStart = "${executorExec} ${args}";
      # Short: after a self-upgrade exit the socket is gone until the new executor listens.
      RestartSec = 2;
      # /run/pullnix holds the operator group's socket. The executor itself sets the directory
      # to root:<operators.group> 0750 and the socket to 0660 after systemd creates it (systemd
      # would create it root:root, the service's own user and group). Root's own socket (the
      # watcher's and root's pullnix-ctl's) is /run/pullnix/root/executor.sock, in a 0700
      # directory the executor creates.
      RuntimeDirectory = "pullnix";
      RuntimeDirectoryMode = "0750";
      # Decision: not preserved. The directory only holds the executor's own socket, which is
      # meaningless once the executor stops; removing it on every stop (including Restart=
      # and the self-upgrade exit) means a stale socket file never outlives its listener, and
      # clients see "no such file" (executor not running) rather than a refused connection.
      RuntimeDirectoryPreserve = "no";
      # NoNewPrivileges only stops a gain of privileges through setuid/setgid/file-capability
      # executables. The executor is root already and everything it runs directly (nix-env,
      # switch-to-configuration boot with its bootloader installer, git, ssh, systemctl,
      # systemd-run) needs no such gain. Activation itself does NOT run under this unit: it is a
      # transient unit started by PID 1 through systemd-run, with none of these restrictions.
      NoNewPrivileges = true;
      # Deliberately NOT set for the executor, because `switch-to-configuration boot` and
      # `nix-env --set` run as its children:
      #   ProtectSystem/ReadWritePaths: nix-env writes /nix/var/nix/profiles and the store,
      #     the bootloader installer writes /boot and /etc; any list would be a guess.
      #   ProtectKernelTunables / ProtectControlGroups: systemd-boot/bootctl and efibootmgr write
      #     EFI variables under /sys/firmware/efi/efivars.
      #   ProtectClock / PrivateDevices / DevicePolicy: grub-install opens the boot disk.
      #   PrivateTmp, ProtectHome, UMask: paths and files created here may be handed to the
      #     activation unit or read by the bootloader; the executor sets explicit modes on its
      #     own files (0600 state, 0660 socket).
      #   SystemCallFilter, RestrictNamespaces, MemoryDenyWriteExecute: Node's JIT needs W+X
      #     memory; nix and the bootloader tools use a wide set of calls.
    };
  };

  pullnix-watcher = {
    description = "pullnix watcher: follows the configuration repository and builds new systems";
    wantedBy = [ "multi-user.target" ];
    # It talks to the executor's socket, and polls a remote: start after both are there.
    # Wants, not Requires/BindsTo/PartOf: the executor restarting (self-upgrade) must never
    # stop or restart the watcher behind the executor's back; the executor restarts it itself.
    wants = [
      "network-online.target"
      "pullnix-executor.service"
    ];
    after = [
      "network-online.target"
      "pullnix-executor.service"
      "time-sync.target"
    ];
    inherit path environment;
    # The executor restarts the watcher after every deployment outcome; switch-to-configuration
    # must not restart it in the middle of one.
    restartIfChanged = false;
    unitConfig = {
      # Nor stop it when a configuration drops pullnix: it waits for the deployment's answer,
      # and the executor stops it once the outcome is recorded.
      X-StopOnRemoval = false;
      StartLimitIntervalSec = 0;
    };
    serviceConfig = common // {
      ExecStart = "${watcherExec} ${args}";
      # Spaces automatic restarts so a crashing watcher cannot spin (restarts by the executor
      # with `systemctl restart` are immediate; RestartSec only applies to Restart=).
      RestartSec = 5;
      # Files the watcher creates (checkout, its memory, build logs) are root-only. Store paths
      # are unaffected (Nix resets their modes) and GC roots are symlinks.
      UMask = "0077";
      # Root already; git, ssh and nix need no setuid helper. (Nix switching to build users is
      # a setuid(2) call by root, which NoNewPrivileges does not restrict.)
      NoNewPrivileges = true;
      # No setuid/setgid files: nothing the watcher writes should ever be one, and Nix refuses
      # them in store paths anyway.
      RestrictSUIDSGID = true;
      # A private /tmp: build directories of a root (local-store) `nix build` live there and
      # nothing else needs to see them.
      PrivateTmp = true;
      # Module loading is never part of polling git or building.
      ProtectKernelModules = true;
      # Deliberately NOT set for the watcher:
      #   ProtectKernelTunables / ProtectKernelLogs / ProtectProc: they over-mount parts of
      #     /proc, and the Linux kernel then refuses a fresh /proc mount inside a user namespace,
      #     which is exactly what the Nix build sandbox does when root builds with the local
      #     store ("mounting /proc: Operation not permitted").
      #   ProtectSystem=strict: a root `nix build` writes /nix directly unless it goes through
      #     the daemon; restricting that is for when the watcher gets its own user.
      #   ProtectHome: nix keeps its fetcher and evaluation caches in $HOME/.cache (/root).
      #   ProtectClock / PrivateDevices: they install a device allow-list, and builds that
      #     need /dev/kvm (NixOS tests) would fail.
      #   RestrictNamespaces / SystemCallFilter: the Nix sandbox needs namespaces and many calls.
      #   MemoryDenyWriteExecute: Node's JIT needs W+X memory.
    };
  };
}
