# NixOS VM test: pullnix deploys a good commit and rolls back a commit that cuts the machine off
# from git. Run with `nix flake check` or `nix build .#checks.x86_64-linux.vm` on a machine with
# KVM. Called as `pkgs.testers.runNixOSTest (import ./nixos/tests/vm.nix { inherit pkgs; })`.
#
# NOT RUN where it was written (no nixpkgs, no KVM there): it parses, and it is written to run as
# is, but it has not been run yet. The approach follows nixpkgs' own
# nixos/tests/nixos-rebuild-specialisations.nix: the machine carries the build dependencies of
# its own system (system.includeBuildDependencies), runs nixos-generate-config, and builds a
# configuration that imports its hardware-configuration.nix and test-instrumentation.nix (so the
# test driver can still talk to it after a switch), without network.
#
# Nodes:
#   gitserver  sshd and a bare repository /srv/git/config.git, reachable as git@gitserver
#              (git-shell), the deploy key authorized at run time.
#   machine    pullnix (nixos/tests/pullnix-machine.nix), classic mode, polling every 5 s.
#
# Story:
#   1. set-up as docs/nixos.md tells a user: deploy key made on the machine, its public half
#      authorized on the server, the server's host key pinned with ssh-keyscan and compared;
#   2. commit "good-1": the machine builds and activates it (the marker /etc/pullnix-test-generation
#      reads good-1), verifies git, and moves the boot default (system profile = running system);
#   3. commit "bad-2", whose firewall rejects traffic to the git server: it is activated (marker
#      bad-2), verification fails, the previous system is re-activated (marker good-1 again), the
#      boot default never moved, git is reachable again, the history names the commit, and the
#      commit is not tried again.
{ pkgs }:
let
  inherit (pkgs) lib;

  # The pullnix sources the machine's configuration imports: the package's files (same allow-list
  # as package.nix, so the machine evaluates the very package it runs) and nixos/.
  src = lib.fileset.toSource {
    root = ../..;
    fileset = lib.fileset.unions [
      (import ../source.nix { inherit lib; })
      ../../nixos
    ];
  };
in
{
  name = "pullnix";

  nodes = {
    gitserver =
      { pkgs, ... }:
      {
        services.openssh.enable = true;
        users.groups.git = { };
        users.users.git = {
          isNormalUser = true;
          group = "git";
          home = "/srv/git";
          createHome = true;
          shell = "${pkgs.git}/bin/git-shell";
        };
        environment.systemPackages = [ pkgs.git ];
      };

    machine =
      { lib, ... }:
      {
        imports = [ ./pullnix-machine.nix ];

        # Everything needed to build a changed system offline, and the sources the committed
        # configuration imports by store path.
        system.includeBuildDependencies = true;
        system.extraDependencies = [ src ];

        virtualisation = {
          cores = 2;
          memorySize = 4096;
          diskSize = 8192;
          writableStoreUseTmpfs = false;
        };
      };
  };

  testScript =
    { nodes, ... }:
    let
      machineIp = nodes.machine.networking.primaryIPAddress;
      gitserverIp = nodes.gitserver.networking.primaryIPAddress;

      # The configuration the machine deploys from git. `generation` ends up in
      # /etc/pullnix-test-generation; `cutOffGit` makes the firewall reject traffic to the git
      # server, so the post-activation check cannot reach git.
      configuration =
        { generation, cutOffGit }:
        pkgs.writeText "configuration-${generation}.nix" ''
          { lib, pkgs, ... }:
          {
            imports = [
              /etc/nixos/hardware-configuration.nix
              <nixpkgs/nixos/modules/testing/test-instrumentation.nix>
              ${src}/nixos/tests/pullnix-machine.nix
            ];

            # Boot entries are not what this test looks at: it checks the system profile, which
            # pullnix moves with nix-env before `switch-to-configuration boot`.
            boot.loader.grub.enable = false;

            # The test network, as the test driver configured it for this node.
            networking.hostName = "machine";
            networking.useDHCP = false;
            networking.interfaces.eth1.ipv4.addresses = [
              { address = "${machineIp}"; prefixLength = 24; }
            ];
            networking.hosts."${gitserverIp}" = [ "gitserver" ];

            networking.nftables.enable = false;
            networking.firewall.enable = true;
            networking.firewall.extraCommands = ${
              if cutOffGit then
                "\"iptables -w -I OUTPUT -d ${gitserverIp} -j REJECT\""
              else
                "\"\""
            };

            environment.etc."pullnix-test-generation".text = "${generation}";

            system.stateVersion = "${lib.trivial.release}";
          }
        '';
      good = configuration {
        generation = "good-1";
        cutOffGit = false;
      };
      bad = configuration {
        generation = "bad-2";
        cutOffGit = true;
      };
    in
    ''
      start_all()
      gitserver.wait_for_unit("sshd.service")
      machine.wait_for_unit("multi-user.target")
      machine.wait_for_unit("pullnix-executor.service")

      with subtest("set up the repository, the deploy key and the pinned host key"):
          gitserver.succeed(
              "install -d -o git -g git -m 700 /srv/git/.ssh",
              "runuser -u git -- git init -q --bare -b main /srv/git/config.git",
          )
          machine.succeed("ssh-keygen -q -t ed25519 -N ''' -C pullnix@machine -f /etc/pullnix/deploy_key")
          # The deploy key is the watcher's alone (it runs as pullnix-watcher).
          machine.succeed("chown pullnix-watcher: /etc/pullnix/deploy_key && chmod 0400 /etc/pullnix/deploy_key")
          pub = machine.succeed("cat /etc/pullnix/deploy_key.pub").strip()
          gitserver.succeed(
              f"echo 'no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty {pub}' > /srv/git/.ssh/authorized_keys",
              "chown git:git /srv/git/.ssh/authorized_keys",
              "chmod 600 /srv/git/.ssh/authorized_keys",
          )
          machine.succeed("ssh-keyscan -t ed25519 gitserver > /etc/pullnix/known_hosts")
          scanned = machine.succeed("ssh-keygen -lf /etc/pullnix/known_hosts").split()[1]
          served = gitserver.succeed("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
          assert scanned == served, f"host key fingerprint mismatch: {scanned} != {served}"
          # The machine's own hardware configuration, imported by the committed configuration.
          machine.succeed("nixos-generate-config")

          gitserver.succeed(
              # root works on the git user's repository ("dubious ownership" otherwise).
              "git config --global --add safe.directory '*'",
              "git config --global user.name developer",
              "git config --global user.email developer@example.org",
              "git clone -q /srv/git/config.git /root/work",
          )

      def commit(configuration_file, message):
          gitserver.succeed(
              f"cp {configuration_file} /root/work/configuration.nix",
              f"cd /root/work && git add configuration.nix && git commit -q -m '{message}'",
              "cd /root/work && git push -q origin HEAD:main",
              # git refuses repositories owned by another user ("dubious ownership").
              "chown -R git:git /srv/git/config.git",
          )
          return gitserver.succeed("git -C /root/work rev-parse HEAD").strip()

      def same_path(a, b):
          return f'test "$(readlink -f {a})" = "$(readlink -f {b})"'

      with subtest("a good commit is built, activated, verified and committed"):
          good = commit("${good}", "good-1")
          machine.wait_until_succeeds("grep -qx good-1 /etc/pullnix-test-generation", timeout=1800)
          # Committed: the boot default (system profile) now is the running system.
          machine.wait_until_succeeds(
              same_path("/nix/var/nix/profiles/system", "/run/current-system"), timeout=300
          )
          machine.wait_until_succeeds(f"pullnix-ctl status --json | grep -q {good}", timeout=300)
          machine.succeed("systemctl is-active pullnix-executor.service pullnix-watcher.service")
          good_system = machine.succeed("readlink -f /run/current-system").strip()
          good_generation = machine.succeed("readlink /nix/var/nix/profiles/system").strip()

      with subtest("a commit that cuts the machine off from git is rolled back"):
          bad = commit("${bad}", "bad-2: cut off git")
          # It is activated (with `test`: the boot default does not move) ...
          machine.wait_until_succeeds("grep -qx bad-2 /etc/pullnix-test-generation", timeout=1800)
          machine.succeed(f'test "$(readlink /nix/var/nix/profiles/system)" = "{good_generation}"')
          # ... verification fails within verify.timeoutSec and the previous system comes back.
          machine.wait_until_succeeds("grep -qx good-1 /etc/pullnix-test-generation", timeout=600)
          machine.succeed(f'test "$(readlink -f /run/current-system)" = "{good_system}"')
          machine.succeed(f'test "$(readlink /nix/var/nix/profiles/system)" = "{good_generation}"')
          # Git is reachable again, with the machine's own key and pinned host key.
          machine.succeed(
              "GIT_SSH_COMMAND='ssh -i /etc/pullnix/deploy_key -o IdentitiesOnly=yes"
              " -o UserKnownHostsFile=/etc/pullnix/known_hosts -o StrictHostKeyChecking=yes'"
              " git ls-remote git@gitserver:config.git main | grep -q " + bad
          )
          machine.wait_until_succeeds(f"pullnix-ctl history --json | grep -q {bad}", timeout=120)
          machine.succeed("journalctl -u pullnix-executor.service --no-pager >&2")

      with subtest("the failed commit is not tried again"):
          machine.sleep(30)
          machine.succeed("grep -qx good-1 /etc/pullnix-test-generation")
          machine.succeed(f'test "$(readlink -f /run/current-system)" = "{good_system}"')
    '';
}
