/**
 * The watcher's poll cycle against real git (bare remotes in temp directories), a stand-in nix
 * first on PATH, and a fake executor behind a real socket that checks every signature.
 */
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { PullnixError } from '@pullnix/shared';
import { GitCheckout, type GitOps, type PollResult, type Watcher } from '@pullnix/watcher';
import { GitRemote } from '../lib/git-remote.ts';
import { linkedWatcher } from '../lib/linked-watcher.ts';
import { FakeExecutor } from '../lib/watcher-fake-executor.ts';
import { CapturedLog, Fixtures, standInToplevel, waitFor, watcherConfig } from '../lib/watcher-fixtures.ts';

const fx = new Fixtures();
fx.installOnPath();
after(() => fx.cleanup());

interface Rig {
  remote: GitRemote;
  stateDir: string;
  executor: FakeExecutor;
  watcher: Watcher;
  log: CapturedLog;
  poll(): Promise<PollResult>;
  /** A second watcher on the same state directory: what a restart by the executor gives. */
  restart(): Promise<Watcher>;
}

const teardowns: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const t of teardowns.splice(0)) await t();
  fx.resetCalls();
  fx.healBuild('all');
});

/**
 * The machine's faults, as the watcher must treat each (watcher/src/fault.ts): not the commit's.
 * Builds: Nix 2.8's words when the nix-daemon restarts (reproduced against a socket nobody
 * listens on), then others of the machine's. Descent: a git that fails while it is asked.
 */
const MACHINE_BUILD_FAULTS = [
  "error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Connection refused",
  'error: unexpected end-of-file',
  "error: writing to file '/nix/store/.tmp-1': No space left on device",
  "error: unable to download 'https://cache.nixos.org/abc.narinfo': Couldn't resolve host name (6)",
] as const;
const MACHINE_DESCENT_FAULTS = [
  { which: 'hasCommit', error: 'fatal: loose object c2 (stored in .git/objects/..) is corrupt' },
  { which: 'isAncestor', error: 'fatal: unable to read tree: Input/output error' },
] as const;

/** One poll the machine failed: retried later, reported as the machine's (lastError.kind), with its message. */
function assertMachineFault(r: Rig, failed: PollResult, label: string, message: RegExp): void {
  assert.equal(failed.outcome, 'machine-error', label);
  assert.equal(r.watcher.report().lastError?.kind, 'machine', label);
  assert.match(r.watcher.report().lastError?.message ?? '', message, label);
}

async function rig(options: { remote?: GitRemote; repository?: Record<string, unknown>; wrapGit?: (git: GitOps) => GitOps } = {}): Promise<Rig> {
  const remote = options.remote ?? new GitRemote();
  const stateDir = fx.newStateDir();
  const socketPath = join(stateDir, 'run', 'executor.sock');
  const config = watcherConfig({ url: remote.url, stateDir, socketPath, ...(options.repository ? { repository: options.repository } : {}) });
  const executor = new FakeExecutor({ socketPath, stateDir });
  await executor.start();
  const log = new CapturedLog();
  const make = () => linkedWatcher({ config, log, teardowns, ...(options.wrapGit ? { wrapGit: options.wrapGit } : {}) });
  const watcher = await make();
  teardowns.push(async () => executor.stop());
  return { remote, stateDir, executor, watcher, log, poll: () => watcher.pollOnce(), restart: make };
}

/** The stand-in's links dangle on purpose (see watcher-fixtures.ts), so existsSync would not see them. */
function linkExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

describe('watcher poll cycle', () => {
  it('builds a new head once, sends one signed deploy, and then a no-op poll runs exactly one git ls-remote', async () => {
    // main: c1 - *c2      (c1 deployed, c2 pushed)
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2: enable sshd');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;

    const first = await r.poll();
    assert.equal(first.outcome, 'deployed');
    assert.equal(first.head, c2);
    const nix = fx.nixCalls();
    assert.equal(nix.length, 1, 'one build');
    assert.deepEqual(nix[0], [
      'nix',
      'build',
      `${join(r.stateDir, 'checkout')}#nixosConfigurations."testhost".config.system.build.toplevel`,
      '--out-link',
      join(r.stateDir, 'gcroots', c2),
      '--max-jobs',
      '0',
    ]);
    assert.deepEqual(r.executor.deploys, [{ commit: c2, toplevel: standInToplevel(c2), keyId: 'watcher' }], 'one request, signed with the watcher key');
    assert.equal(readlinkSync(join(r.stateDir, 'gcroots', c2)), standInToplevel(c2), 'a GC root holds the build');
    assert.equal(r.log.events('deploy.outcome')[0]?.fields.outcome, 'succeeded');
    await waitFor('a report naming the new head', () => r.executor.lastReport?.deployedCommit?.commit === c2 && r.executor.lastReport.state === 'idle');
    assert.equal(r.executor.lastReport?.remoteHead?.subject, 'c2: enable sshd');

    fx.resetCalls();
    const second = await r.poll();
    assert.equal(second.outcome, 'unchanged');
    assert.deepEqual(
      fx.gitCalls().map((argv) => argv[0]),
      ['ls-remote'],
      'a no-op poll starts exactly one process: git ls-remote',
    );
    assert.equal(fx.nixCalls().length, 0);
    assert.equal(r.executor.deploys.length, 1);
    assert.equal(r.log.count('poll.unchanged'), 1);

    // A restarted watcher (same state directory) does not redeploy what is live either.
    fx.resetCalls();
    const restarted = await r.restart();
    assert.equal((await restarted.pollOnce()).outcome, 'unchanged');
    assert.deepEqual(fx.gitCalls().map((argv) => argv[0]), ['ls-remote']);
    assert.equal(r.executor.deploys.length, 1);
  });

  it('judges drift against what the executor reports deployed: a fresh watcher does not redeploy the live commit', async () => {
    // main: c1 - *c2      (c2 deployed, the watcher's state directory is new)
    const remote = new GitRemote();
    remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c2;
    const result = await r.poll();
    assert.equal(result.outcome, 'unchanged');
    assert.deepEqual(fx.gitCalls().map((argv) => argv[0]), ['ls-remote']);
    assert.equal(fx.nixCalls().length, 0);
    assert.equal(r.executor.deploys.length, 0);
  });

  it('records a build failure with the log tail, sends nothing, does not retry it, and builds the next commit', async () => {
    // main: c1 - c2 (build fails) - *c3
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2: typo');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;
    const nixError = "error: flake 'path:/x' does not provide attribute 'nixosConfigurations.testhost.config.system.build.toplevel'";
    fx.failBuild(c2, `evaluating...\n${nixError}\n`);

    const failed = await r.poll();
    assert.equal(failed.outcome, 'build-failed');
    assert.equal(r.executor.deploys.length, 0, 'no request for a failed build');
    const logged = r.log.events('build.failed');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.fields.commit, c2);
    assert.match(logged[0]?.fields.error ?? '', /does not provide attribute/);
    assert.equal(logged[0]?.priority, 3);
    assert.equal(linkExists(join(r.stateDir, 'gcroots', c2)), false, 'no GC root for a failed build');
    const memory = r.watcher.remembered;
    assert.deepEqual(memory.failures.map((f) => f.commit), [c2]);
    assert.match(memory.failures[0]?.logTail ?? '', /evaluating\.\.\.\n.*does not provide attribute/);
    await waitFor('a report listing the failed build', () => r.executor.lastReport?.failedBuilds.includes(c2) === true && r.executor.lastReport.lastError?.kind === 'build');

    fx.healBuild(c2);
    fx.resetCalls();
    assert.equal((await r.poll()).outcome, 'unchanged', 'not retried while the head stays');
    assert.equal(fx.nixCalls().length, 0);
    assert.equal((await (await r.restart()).pollOnce()).outcome, 'unchanged', 'not retried after a restart either');
    assert.equal(fx.nixCalls().length, 0);

    const c3 = remote.commit('c3: fix typo');
    remote.push();
    const next = await r.poll();
    assert.equal(next.outcome, 'deployed');
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c3]);
  });

  it("a build the machine failed (nix-daemon refused, disk full, network) is not remembered against the commit: tried again with back-off, shown as the machine's", async () => {
    // main: c1 - *c2     (c1 deployed; c2's build fails for the machine's reasons, then builds)
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;
    const delays: number[] = [];
    for (const stderr of MACHINE_BUILD_FAULTS) {
      fx.failBuild(c2, `${stderr}\n`);
      const failed = await r.poll();
      assertMachineFault(r, failed, stderr, /the machine's .* not the commit's; tried again/);
      delays.push(failed.nextDelayMs);
      assert.deepEqual(r.watcher.remembered.failures, [], `${stderr}: not remembered as a failed build`);
      assert.equal(r.watcher.remembered.lastHandled?.commit === c2, false, 'the head is not marked handled');
    }
    assert.ok(delays[1]! >= delays[0]! && delays[2]! >= delays[1]!, `back-off grows: ${delays.join(', ')}`);
    assert.equal(r.log.count('build.deferred'), MACHINE_BUILD_FAULTS.length);
    assert.equal(r.log.count('build.failed'), 0);
    await waitFor("a report naming the machine's failure", () => r.executor.lastReport?.lastError?.kind === 'machine' && r.executor.lastReport.failedBuilds.length === 0);
    // The daemon is back: the same commit builds and deploys.
    fx.healBuild(c2);
    assert.equal((await r.poll()).outcome, 'deployed');
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c2]);
  });

  it('does not retry a commit the executor rolled back (known bad), and deploys a newer one', async () => {
    // main: c1 - c2 (rolled back) - *c3
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2: breaks the network');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;
    r.executor.answer = (p) => (p.commit === c2 ? 'rolled-back' : 'succeeded');

    const first = await r.poll();
    assert.equal(first.outcome, 'deploy-failed');
    assert.equal(r.log.events('deploy.outcome')[0]?.fields.outcome, 'rolled-back');
    assert.deepEqual(r.executor.knownBad, [c2]);

    // The executor restarts the watcher after an outcome; also lose the watcher's memory, so only
    // the executor's known-bad list stands between c2 and a second attempt.
    fx.resetCalls();
    const amnesiac = await rig({ remote });
    amnesiac.executor.deployed = c1;
    amnesiac.executor.knownBad = [c2];
    const again = await amnesiac.poll();
    assert.equal(again.outcome, 'known-bad');
    assert.equal(amnesiac.log.count('head.known_bad'), 1);
    assert.equal(amnesiac.log.events('head.known_bad')[0]?.fields.source, 'executor');
    assert.equal(fx.nixCalls().length, 0, 'not built again');
    assert.equal(amnesiac.executor.deploys.length, 0);
    assert.equal((await amnesiac.poll()).outcome, 'unchanged');
    assert.equal(amnesiac.log.count('head.known_bad'), 1, 'logged once per head');

    const c3 = remote.commit('c3: keep the network');
    remote.push();
    assert.equal((await amnesiac.poll()).outcome, 'deployed');
    assert.deepEqual(amnesiac.executor.deploys.map((d) => d.commit), [c3]);
  });

  it('refuses a force-pushed head that does not descend from the deployed commit, once', async () => {
    // before: main: c1 - *c2          (c2 deployed)
    // after:  main: c1 - *c3          (force-pushed; c2 is gone from the branch)
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;
    assert.equal((await r.poll()).outcome, 'deployed');
    assert.equal(r.executor.deployed, c2);

    remote.resetTo(c1);
    const c3 = remote.commit('c3: old, vulnerable configuration');
    remote.forcePush();
    const refused = await r.poll();
    assert.equal(refused.outcome, 'not-descendant');
    const line = r.log.events('head.not_descendant');
    assert.equal(line.length, 1);
    assert.equal(line[0]?.fields.commit, c3);
    assert.equal(line[0]?.fields.deployed, c2);
    assert.equal(line[0]?.priority, 4);
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c2], 'nothing requested');
    assert.equal(fx.nixCalls().length, 1, 'nothing built');
    await waitFor('a report saying the head was refused', () => r.executor.lastReport?.refusedHead?.commit === c3 && r.executor.lastReport.state === 'idle');
    assert.deepEqual(r.executor.lastReport?.refusedHead, { commit: c3, reason: 'not-descendant', deployed: c2, at: r.executor.lastReport?.refusedHead?.at });
    assert.equal((await r.poll()).outcome, 'unchanged', 'not looked at again until the head changes');
    assert.equal(r.log.count('head.not_descendant'), 1);
    // A restarted watcher still reports it (from watcher.json), after its first poll.
    const restarted = await r.restart();
    assert.equal((await restarted.pollOnce()).outcome, 'unchanged');
    assert.equal(restarted.report().refusedHead?.commit, c3);
    // The branch moves on to a descendant of the deployed commit: no longer refused.
    remote.resetTo(c2);
    const c4 = remote.commit('c4');
    remote.forcePush();
    assert.equal((await restarted.pollOnce()).outcome, 'deployed');
    assert.equal(restarted.report().remoteHead?.commit, c4);
    assert.equal(restarted.report().refusedHead, null);
  });

  it("a git that cannot tell whether the head descends (any error) is the machine's fault: tried again with back-off, never a force-push", async () => {
    // main: c1 - *c2 - c3     (c2 deployed; git fails once while c3 is looked at)
    const remote = new GitRemote();
    remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.push();
    let failing: string | null = null;
    const fail = (which: string) => {
      const fault = MACHINE_DESCENT_FAULTS.find((f) => f.which === which && failing === which);
      if (fault) {
        failing = null;
        throw new Error(fault.error);
      }
    };
    const r = await rig({
      remote,
      wrapGit: (git) => ({
        lsRemote: (signal) => git.lsRemote(signal),
        fetch: (signal) => git.fetch(signal),
        checkout: (commit, signal) => git.checkout(commit, signal),
        describe: (commit) => git.describe(commit),
        discard: (keep, signal) => git.discard(keep, signal),
        hasCommit: async (commit) => {
          if (commit === c2) fail('hasCommit');
          return git.hasCommit(commit);
        },
        isAncestor: async (a, d) => {
          fail('isAncestor');
          return git.isAncestor(a, d);
        },
      }),
    });
    r.executor.deployed = c2;
    const c3 = remote.commit('c3');
    remote.push();
    for (const { which } of MACHINE_DESCENT_FAULTS) {
      failing = which;
      const failed = await r.poll();
      assertMachineFault(r, failed, which, /cannot tell whether .* descends .*git failed/);
      assert.equal(failing, null, `${which} was asked, and failed`);
      assert.equal(r.log.count('head.not_descendant'), 0, `${which}: not taken for a force-push`);
      assert.equal(r.watcher.report().refusedHead, null);
      assert.deepEqual(r.executor.deploys, [], 'nothing requested yet');
    }
    assert.equal(r.log.count('head.descent_unknown'), MACHINE_DESCENT_FAULTS.length);
    // git answers again: the same head is looked at again and deployed
    assert.equal((await r.poll()).outcome, 'deployed');
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c3]);
  });

  it('hasCommit: a commit the checkout does not hold is false; a git error is thrown, not taken for "absent"', async () => {
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = null;
    await r.poll();
    const dir = join(r.stateDir, 'checkout');
    const git = new GitCheckout({ url: remote.url, branch: 'main', dir, env: {}, logger: r.log.logger });
    assert.equal(await git.hasCommit(c1), true);
    assert.equal(await git.hasCommit('0'.repeat(40)), false);
    // The fetched pack, corrupted on disk (its objects' bytes overwritten): git fails to read c1 (an object error)
    const packDir = join(dir, '.git', 'objects', 'pack');
    for (const name of readdirSync(packDir).filter((n) => n.endsWith('.pack'))) {
      const pack = join(packDir, name);
      chmodSync(pack, 0o644);
      const bytes = readFileSync(pack);
      bytes.fill(0xff, 12, bytes.length - 20);
      writeFileSync(pack, bytes);
    }
    await assert.rejects(git.hasCommit(c1), /corrupt|inflate|unable|fatal/i);
  });

  it('deploys a non-descendant head when repository.allowNonDescendant is set, even with the deployed commit gone', async () => {
    // deployed: c2 (never fetched by this watcher, and no longer on the remote)
    // main: c1 - *c3
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.resetTo(c1);
    const c3 = remote.commit('c3');
    remote.push();
    const strict = await rig({ remote });
    strict.executor.deployed = c2;
    assert.equal((await strict.poll()).outcome, 'not-descendant', 'a deployed commit missing from the repository is not an ancestor');

    const lenient = await rig({ remote, repository: { allowNonDescendant: true } });
    lenient.executor.deployed = c2;
    assert.equal((await lenient.poll()).outcome, 'deployed');
    assert.deepEqual(lenient.executor.deploys.map((d) => d.commit), [c3]);
    assert.equal(lenient.log.count('head.not_descendant'), 0);
  });

  it('logs an unreachable remote once while it stays down, backs off, and logs once when it answers again', async () => {
    // main: *c1
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;
    remote.takeDown();
    const delays: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const result = await r.poll();
      assert.equal(result.outcome, 'remote-error');
      delays.push(result.nextDelayMs);
    }
    assert.deepEqual(delays, [100, 200, 400, 800], 'bounded exponential back-off (base 100 ms in this test)');
    assert.equal((await r.poll()).nextDelayMs, 1600);
    assert.equal((await r.poll()).nextDelayMs, 2000, 'capped at poll.maxBackoffSec');
    const down = r.log.events('remote.unreachable');
    assert.equal(down.length, 1, 'once per change of state, not once per poll');
    assert.match(down[0]?.fields.error ?? '', /does not appear to be a git repository|Could not read/);
    assert.equal(r.log.count('remote.reachable'), 0);
    await waitFor('a report in backing-off with the cause', () => r.executor.lastReport?.state === 'backing-off' && r.executor.lastReport.lastError?.kind === 'remote');

    remote.restore();
    const back = await r.poll();
    assert.equal(back.outcome, 'unchanged');
    assert.equal(back.nextDelayMs, 3600_000, 'the normal interval again');
    assert.equal(r.log.count('remote.reachable'), 1);
    assert.equal((await r.poll()).outcome, 'unchanged');
    assert.equal(r.log.count('remote.reachable'), 1);
    assert.equal(r.log.count('remote.unreachable'), 1);
  });

  it('forgets a build failure when the executor pushes retry', async () => {
    // main: c1 - *c2 (build fails, then an operator fixes the cause and says retry)
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;
    fx.failBuild(c2, 'error: cannot download (binary cache down)\n');
    assert.equal((await r.poll()).outcome, 'build-failed');
    fx.healBuild(c2);
    assert.equal((await r.poll()).outcome, 'unchanged');

    r.executor.push({ type: 'retry', commit: c2 });
    await waitFor('the retry to reach the watcher', () => r.log.count('poll.retry_requested') === 1);
    assert.equal(r.log.events('poll.retry_requested')[0]?.fields.forgotten, 'true');
    assert.deepEqual(r.watcher.remembered.failures, []);
    assert.equal((await r.poll()).outcome, 'deployed');
    assert.deepEqual(r.executor.deploys.map((d) => d.commit), [c2]);
  });

  it('leaves the head for later when the executor refuses for a passing reason, and for good when it is known bad', async () => {
    // main: c1 - *c2
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    const c2 = remote.commit('c2');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;
    r.executor.answer = () => new PullnixError('BUSY', 'a deployment is in progress');
    const busy = await r.poll();
    assert.equal(busy.outcome, 'retry-later');
    assert.equal(r.log.events('deploy.refused')[0]?.fields.code, 'BUSY');
    r.executor.answer = () => new PullnixError('KNOWN_BAD', 'c2 failed before');
    assert.equal((await r.poll()).outcome, 'refused', 'the same head is tried again after BUSY');
    assert.equal(r.executor.deploys.length, 2);
    assert.equal((await r.poll()).outcome, 'unchanged', 'KNOWN_BAD is final until the head changes');
    assert.equal(r.executor.deploys.length, 2);
  });

  it('builds nothing while deployments are paused, and the head once they resume', async () => {
    // main: c1 - *c2
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    remote.commit('c2');
    remote.push();
    const r = await rig({ remote });
    r.executor.deployed = c1;
    r.executor.paused = { since: new Date().toISOString(), reason: 'maintenance', by: 'alice' };
    assert.equal((await r.poll()).outcome, 'paused');
    assert.equal((await r.poll()).outcome, 'paused');
    assert.equal(r.log.count('poll.paused'), 1, 'logged once per head');
    assert.equal(fx.nixCalls().length, 0);
    r.executor.paused = null;
    assert.equal((await r.poll()).outcome, 'deployed');
  });

  it('runs every git command with the deploy key and the pinned known_hosts from the configuration', async () => {
    // main: c1 - *c2
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    remote.commit('c2');
    remote.push();
    const r = await rig({ remote, repository: { sshKeyFile: '/etc/pullnix/deploy key', knownHostsFile: '/etc/pullnix/known_hosts' } });
    r.executor.deployed = c1;
    assert.equal((await r.poll()).outcome, 'deployed');
    const ssh = fx.gitSshCommands();
    assert.ok(ssh.length >= 3, `ls-remote, fetch, checkout... (${ssh.length} git processes)`);
    assert.equal(ssh.length, fx.gitCalls().length);
    for (const command of ssh) {
      assert.equal(command, "ssh -o BatchMode=yes -o ConnectTimeout=10 -i '/etc/pullnix/deploy key' -o IdentitiesOnly=yes -o UserKnownHostsFile=/etc/pullnix/known_hosts -o StrictHostKeyChecking=yes");
    }
  });

  it('keeps the newest build.keepGcRoots GC roots and always the deployed one', async () => {
    // main: c1 - c2 - c3 - *c4, each deployed in turn (keepGcRoots = 2)
    const remote = new GitRemote();
    const c1 = remote.commit('c1');
    remote.push();
    const r = await rig({ remote });
    const built: string[] = [];
    for (const name of ['c2', 'c3', 'c4']) {
      built.push(remote.commit(name));
      remote.push();
      assert.equal((await r.poll()).outcome, 'deployed');
    }
    void c1;
    const present = built.filter((c) => linkExists(join(r.stateDir, 'gcroots', c)));
    assert.deepEqual(present, built.slice(1));
    assert.equal(r.log.events('gcroots.pruned')[0]?.fields.removed, built[0]);
  });
});
