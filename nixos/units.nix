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
#   watcherReadWritePaths  extra paths the watcher may write despite ProtectSystem=strict (the
#                 metrics textfile directory), systemd ReadWritePaths syntax ("-" prefix: may be absent).
#
# The watcher runs as the static user `pullnix-watcher` (the module creates it; the config file
# says `watcher.user = "pullnix-watcher"`, docs/decisions.md D20) with its own state directory
# /var/lib/pullnix-watcher and the socket /run/pullnix-watcher/executor.sock that the executor
# serves it; it builds through the nix-daemon. Every hardening option below is argued where it is
# set; `systemd-analyze security` figures are in docs/security.md.
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
  watcherReadWritePaths ? [ ],
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
    # personality(2) changes and realtime scheduling are never needed by Node, git, ssh or nix;
    # these only remove abilities no part of the job uses.
    LockPersonality = true;
    RestrictRealtime = true;
    # Neither daemon loads kernel modules, reads the kernel log or runs code of another
    # architecture.
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    SystemCallArchitectures = "native";
    # Unix sockets (the executor's, the nix-daemon's, systemd's), IP (the git remote, the http
    # and tcp checks), and AF_NETLINK: node-ipc (the executor's server) calls
    # os.networkInterfaces() when it loads (getifaddrs, a netlink query; without it the daemons
    # exited at start, seen on the bed), and glibc's getaddrinfo with AI_ADDRCONFIG asks netlink
    # too. No raw or packet sockets.
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
      "AF_NETLINK"
    ];
    # No setuid/setgid files: nothing either writes should ever be one (Nix refuses them in the
    # store; the setuid wrappers of NixOS are made by the activation, which is not run here).
    RestrictSUIDSGID = true;
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
      # /var/lib/pullnix: state, history, keys. 0700: nothing in it is for anyone but root;
      # operators use the socket, the watcher its own socket and its own state directory.
      StateDirectory = "pullnix";
      StateDirectoryMode = "0700";
      # Short: after a self-upgrade exit the socket is gone until the new executor listens.
      RestartSec = 2;
      # /run/pullnix holds the operator group's socket. The executor itself sets the directory
      # to root:<operators.group> 0750 and the socket to 0660 after systemd creates it (systemd
      # would create it root:root, the service's own user and group). Root's own socket (the
      # watcher's and root's pullnix-ctl's) is /run/pullnix/root/executor.sock, in a 0700
      # directory the executor creates.
      # /run/pullnix-watcher holds the watcher's socket: the executor sets it to
      # root:pullnix-watcher 0750 and the socket to 0660, so the watcher's user reaches that
      # socket and no other (it is not in the operator group, and root's is in a 0700 directory).
      RuntimeDirectory = [
        "pullnix"
        "pullnix-watcher"
      ];
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
      # Only mount namespaces: nix as root (`nix-env --set` on the local store) remounts a
      # read-only /nix/store writable in a private mount namespace. No user, pid, net, uts, ipc
      # or cgroup namespace is made by it or by a bootloader installer.
      RestrictNamespaces = "mnt";
      # Capabilities nothing it runs directly needs (switch-to-configuration's activation runs
      # in a transient unit of PID 1, with its own). Kept: CAP_SYS_ADMIN (the remount above,
      # grub-install's mounts), CAP_DAC_*/CAP_FOWNER/CAP_CHOWN (root's files, the watcher's
      # socket directory), CAP_SETUID/SETGID (the nix-daemon protocol is not used; local builds
      # of nix as root switch to build users), CAP_LINUX_IMMUTABLE (efibootmgr clears the
      # immutable flag of efivarfs files), CAP_SYS_RAWIO (grub-install's FIBMAP on the boot
      # disk), CAP_SYS_RESOURCE (root's reserved blocks: a nearly full disk must still take a
      # profile link and a bootloader entry, above all for a rollback). Dropped besides those
      # systemd-analyze lists: CAP_SYS_PTRACE and CAP_SYS_CHROOT (it debugs and chroots nothing;
      # nix-env does not build) and CAP_KILL (its children are its own; units are stopped by PID 1).
      CapabilityBoundingSet = [
        "~CAP_SYS_TIME CAP_WAKE_ALARM CAP_SYS_PACCT CAP_BLOCK_SUSPEND CAP_LEASE CAP_SYS_TTY_CONFIG"
        "~CAP_SYS_BOOT CAP_AUDIT_CONTROL CAP_AUDIT_READ CAP_AUDIT_WRITE CAP_MAC_ADMIN CAP_MAC_OVERRIDE"
        "~CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_RAW CAP_IPC_LOCK CAP_BPF"
        "~CAP_MKNOD CAP_KILL CAP_SYS_NICE CAP_SYSLOG CAP_SYS_MODULE CAP_SYS_PTRACE CAP_SYS_CHROOT"
      ];
      # System calls no part of the job makes (a deny list: nix, the bootloader installers and
      # Node need @mount, @privileged and @resources). EPERM, not a kill, if one is tried.
      SystemCallFilter = [ "~@clock @cpu-emulation @debug @module @obsolete @raw-io @reboot @swap" ];
      SystemCallErrorNumber = "EPERM";
      # Its own /tmp (it uses none; the bootloader tools may), home directories read-only
      # (git's and nix's look-ups of ~ only read).
      PrivateTmp = true;
      ProtectHome = "read-only";
      # Deliberately NOT set for the executor, because `switch-to-configuration boot` and
      # `nix-env --set` run as its children:
      #   User=: it is the part that switches the system.
      #   PrivateMounts: that private mount namespace of nix as root, and /boot mounted on use.
      #   ProtectHostname, PrivateNetwork, IPAddressDeny: the checks it runs reach the machine's
      #     own services and the git remote; a UTS namespace would hide a hostname the
      #     activation sets from the executor and its verification.
      #   ProtectSystem/ReadWritePaths: nix-env writes /nix/var/nix/profiles and the store,
      #     the bootloader installer writes /boot and /etc; any list would be a guess.
      #   ProtectKernelTunables: systemd-boot/bootctl and efibootmgr write EFI variables under
      #     /sys/firmware/efi/efivars.
      #   ProtectClock / PrivateDevices / DevicePolicy: grub-install opens the boot disk.
      #   UMask: files the bootloader installer writes (its configuration) keep their usual
      #     modes; the executor sets explicit modes on its own files (0600 state, 0660 socket).
      #   PrivateUsers, PrivateIPC: root's view of users and IPC is what it manages.
      #   ProtectProc, ProcSubset, ProtectControlGroups (and ProtectKernelTunables): each gives
      #     the unit a /proc of its own (measured on systemd 252), which shows the kernel's boot
      #     id (/proc/sys/kernel/random/boot_id), not the one a container manager gives the
      #     machine; crash recovery tells a reboot from an executor crash by it, so in a
      #     container (NixOS containers, the test bed) a power cut would look like a crash and
      #     the deployment be rolled back instead of recorded interrupted (seen: scenarios 5, 12).
      #   MemoryDenyWriteExecute: Node's JIT needs W+X memory (Node aborts with it, measured).
      #   SystemCallFilter=@system-service (an allow list): nix and the bootloader tools need
      #     mount, chown to build users, setrlimit; the deny list above is what is safe.
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
    inherit path;
    environment = environment // {
      # Builds go through the nix-daemon (multi-user Nix, as on every NixOS): the watcher cannot
      # write /nix itself. Its out-links in its state directory become indirect GC roots
      # (/nix/var/nix/gcroots/auto), registered by the daemon.
      NIX_REMOTE = "daemon";
      # nix's fetcher and evaluation caches ($XDG_CACHE_HOME/nix), in CacheDirectory below: the
      # user's home is not writable (ProtectHome, and pullnix-watcher has none).
      XDG_CACHE_HOME = "/var/cache/pullnix-watcher";
    };
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
      # Its own unprivileged user: it talks to the network, parses what a git server sends and
      # evaluates the repository's Nix code; none of that needs root.
      User = "pullnix-watcher";
      Group = "pullnix-watcher";
      # /var/lib/pullnix-watcher: checkout, GC roots (out-links), its memory (watcher.json),
      # the trust keyring, its key pair (watcher.key 0600, watcher.pub read by the executor).
      StateDirectory = "pullnix-watcher";
      StateDirectoryMode = "0700";
      CacheDirectory = "pullnix-watcher";
      CacheDirectoryMode = "0700";
      # Files it creates are its own only. Store paths are unaffected (the daemon sets their
      # modes) and GC roots are symlinks.
      UMask = "0077";
      # No privilege at all, and no way to gain one (no setuid helper is needed: Nix builds
      # as the build users in the daemon).
      NoNewPrivileges = true;
      CapabilityBoundingSet = "";
      AmbientCapabilities = "";
      # The whole file system read-only except its state and cache directories and what
      # watcherReadWritePaths adds; /home, /root and /run/user inaccessible; its own /tmp and
      # /dev (no devices). Connecting to the nix-daemon's and the executor's sockets needs no
      # write access to the file system they are on.
      ProtectSystem = "strict";
      ProtectHome = true;
      PrivateTmp = true;
      PrivateDevices = true;
      ReadWritePaths = watcherReadWritePaths;
      # Kernel, clock, hostname, cgroups: read-only or unreachable.
      ProtectKernelTunables = true;
      ProtectControlGroups = true;
      ProtectClock = true;
      ProtectHostname = true;
      # Other processes are invisible in /proc (its own and its children's remain).
      ProtectProc = "invisible";
      # Namespaces are for the build sandbox, which runs in the daemon, not here.
      RestrictNamespaces = true;
      PrivateIPC = true;
      RemoveIPC = true;
      # The system calls of an ordinary service; not the privileged or resource-control ones.
      SystemCallFilter = [
        "@system-service"
        "~@privileged @resources"
      ];
      SystemCallErrorNumber = "EPERM";
      # Deliberately NOT set for the watcher:
      #   MemoryDenyWriteExecute: Node's V8 compiles JavaScript to machine code at run time and
      #     needs memory that is writable and executable; with it Node aborts at start (measured
      #     on the test bed, docs/security.md).
      #   PrivateNetwork / IPAddressDeny: it must reach the git remote, wherever that is.
      #   PrivateUsers: ssh and git check the ownership of the deploy key and known_hosts, and
      #     a user namespace would show root's files as "nobody".
      #   ProcSubset=pid: Node (os.cpus, libuv) reads /proc/cpuinfo and /proc/stat.
    };
  };
}
