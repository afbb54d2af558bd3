# The pullnix part of the VM test machine's configuration. Imported twice, identically: by the
# test node itself (nixos/tests/vm.nix) and by the configuration.nix the test commits to the git
# server, which the machine then builds and deploys. So the pullnix units are the same before
# and after each deployment, as on a real machine whose configuration repository enables pullnix.
{ lib, pkgs, ... }:
{
  imports = [ ../module.nix ];

  services.pullnix = {
    enable = true;
    settings = {
      repository = {
        # git-shell account on the git server; the path is relative to its home, /srv/git.
        url = "git@gitserver:config.git";
        branch = "main";
        sshKeyFile = "/etc/pullnix/deploy_key";
        knownHostsFile = "/etc/pullnix/known_hosts";
      };
      # Classic mode: the repository holds a configuration.nix built with <nixpkgs/nixos>, so the
      # machine needs no flake inputs (there is no network to fetch them from).
      build = {
        mode = "classic";
        file = "configuration.nix";
      };
      poll = {
        intervalSec = 5;
        jitterSec = 0;
        maxBackoffSec = 10;
      };
      verify = {
        timeoutSec = 30;
        attemptTimeoutSec = 5;
        initialBackoffMs = 500;
      };
    };
  };

  # The machine evaluates <nixpkgs/nixos> itself: the same nixpkgs the test was built from (the
  # string context puts it into the machine's closure), and no binary cache to wait for.
  nix.nixPath = [ "nixpkgs=${pkgs.path}" ];
  nix.settings.substituters = lib.mkForce [ ];
  documentation.enable = false;
}
