/**
 * End to end: the real pullnix-watcher and pullnix-executor processes deploy a commit. The
 * watcher polls a real git remote, builds the flake with the real nix, sends a signed deploy;
 * the executor activates it (systemd-run stand-in), verifies git, sets the real system profile
 * with nix-env, and restarts the watcher (systemctl stand-in), which then has nothing to do.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readlinkSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { GitRemote } from '../lib/git-remote.ts';
import { CTL_MAIN, e2eUnavailable, EXECUTOR_MAIN, Machine, WATCHER_MAIN, type Daemon } from '../lib/watcher-machine.ts';
import type { StatusResult } from '@pullnix/shared';

function ctlStatus(machine: Machine): StatusResult {
  const run = spawnSync(process.execPath, [CTL_MAIN, 'status', '--json', '--config', machine.configPath], { encoding: 'utf8', env: machine.env() });
  if (run.status !== 0) throw new Error(`pullnix-ctl status exited ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout) as StatusResult;
}
import { waitFor } from '../lib/watcher-fixtures.ts';

const unavailable = e2eUnavailable();

describe('end to end: watcher and executor deploy a commit', { skip: unavailable ? `skipped: ${unavailable}` : false }, () => {
  it('deploys the branch head, restarts the watcher, which then leaves the live commit alone; `pullnix-ctl sync` deploys the next commit', async () => {
    // main: c1 - *c2      (nothing deployed; c2 is built, deployed, then c3 follows)
    const remote = new GitRemote();
    const machine = new Machine(remote.url);
    remote.commit('c1: first configuration', { 'flake.nix': machine.flake('one') });
    const c2 = remote.commit('c2: second configuration', { 'flake.nix': machine.flake('two') });
    remote.push();

    const daemons: Daemon[] = [];
    const stopAll = async () => {
      for (const d of daemons.reverse()) await d.stop();
    };
    try {
      const executor = machine.start(EXECUTOR_MAIN);
      daemons.push(executor);
      await waitFor('the executor to listen (it creates the watcher key)', () => executor.lines('executor.started').length === 1, 60_000);

      let watcher = machine.start(WATCHER_MAIN);
      daemons.push(watcher);
      await waitFor('the watcher to hear the outcome', () => watcher.lines('deploy.outcome').length === 1 || watcher.lines('build.failed').length > 0, 120_000);
      assert.deepEqual(watcher.lines('build.failed'), [], watcher.output);
      const outcome = watcher.lines('deploy.outcome')[0]!;
      assert.match(outcome, new RegExp(`commit=${c2} .*outcome=succeeded`));

      const toplevel = readlinkSync(join(machine.stateDir, 'gcroots', c2));
      assert.match(toplevel, /^\/nix\/store\/[0-9a-z]{32}-nixos-system-testhost-two$/);
      assert.equal(readFileSync(join(toplevel, 'nixos-version'), 'utf8'), 'two\n');
      assert.equal(readlinkSync(machine.currentSystem), toplevel, 'activated: current-system is the new toplevel');
      assert.equal(readlinkSync(join(machine.dir, 'profiles', readlinkSync(machine.profile))), toplevel, 'committed: a system profile generation');
      const activation = machine.calls('systemd-run')[0] ?? [];
      assert.deepEqual(activation.slice(-2), [`${toplevel}/bin/switch-to-configuration`, 'test'], 'activated through systemd-run');
      assert.ok(executor.lines('deploy.succeeded').some((l) => l.includes(c2)), executor.output);
      const accepted = executor.lines('deploy.accepted');
      assert.equal(accepted.length, 1);
      assert.match(accepted[0]!, new RegExp(`commit=${c2} .*key=watcher`), 'the request was signed with the watcher key');

      // Step 7: the executor restarts the watcher. Do what systemd would.
      await waitFor('systemctl restart of the watcher', () => machine.calls('systemctl').some((c) => c[0] === 'restart' && c.includes('pullnix-watcher.service')));
      assert.equal(await watcher.stop(), 0, 'the watcher stops cleanly on SIGTERM');
      watcher = machine.start(WATCHER_MAIN);
      daemons.push(watcher);
      await waitFor('the restarted watcher to poll', () => watcher.lines('poll.unchanged').length === 1, 60_000);
      assert.match(watcher.lines('poll.unchanged')[0]!, new RegExp(`commit=${c2}`));
      assert.deepEqual(watcher.lines('build.started'), [], 'the live commit is not rebuilt');
      assert.equal(executor.lines('deploy.accepted').length, 1, 'nor redeployed');

      // A newer commit while the watcher sleeps its hour: `pullnix-ctl sync` reaches it over the
      // executor's socket and it polls at once, building c3 on top of c2.
      await waitFor('the restarted watcher to report itself idle', () => ctlStatus(machine).watcher.report?.state === 'idle');
      const c3 = remote.commit('c3: third configuration', { 'flake.nix': machine.flake('three') });
      remote.push();
      const sync = spawnSync(process.execPath, [CTL_MAIN, 'sync', '--config', machine.configPath], { encoding: 'utf8', env: machine.env() });
      assert.equal(sync.status, 0, sync.stderr);
      await waitFor('the next outcome', () => watcher.lines('deploy.outcome').length === 1 || watcher.lines('build.failed').length > 0, 120_000);
      assert.equal(watcher.lines('poll.sync_requested').length, 1);
      assert.match(watcher.lines('deploy.outcome')[0]!, new RegExp(`commit=${c3} .*outcome=succeeded`));
      assert.match(readlinkSync(machine.currentSystem), /-nixos-system-testhost-three$/);
      const status = ctlStatus(machine);
      assert.equal(status.deployed?.commit, c3);
      assert.equal(status.watcher.connected, true);
    } finally {
      await stopAll();
    }
  });
});
