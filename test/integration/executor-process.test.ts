/**
 * A real pullnix-executor process over its real Unix socket: real store paths, the real nix-env
 * making real profile generations, a real git remote for the connectivity check, stand-in
 * systemd-run / systemctl / switch-to-configuration that record their argv.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SocketClient } from '@pullnix/shared';
import { COMMIT_1, COMMIT_2, COMMIT_3, COMMIT_4, EXECUTOR_MAIN, ExecutorProcess, makeBed, type Bed } from '../lib/executor-fixtures.ts';

const UNITS_SHOWN = 'Id,InvocationID,NRestarts,ActiveEnterTimestampMonotonic,Restart,RestartUSec,RestartUSecNext,StartLimitIntervalUSec,StartLimitBurst';

describe('executor process: the pipeline end to end', () => {
  let bed: Bed;
  let proc: ExecutorProcess;
  let watcher: SocketClient;
  let operator: SocketClient;
  let v1: string;

  before(async () => {
    bed = makeBed();
    proc = await ExecutorProcess.start(bed);
    watcher = await proc.client('watcher');
    operator = await proc.client('operator');
  });

  after(async () => {
    watcher?.close();
    operator?.close();
    await proc?.stop();
    bed?.cleanup();
  });

  it('creates its keys and a socket only root and the operator group may use', () => {
    assert.equal(statSync(join(bed.stateDir, 'keys')).mode & 0o777, 0o700);
    for (const k of ['watcher.key', 'local-operator.key']) assert.equal(statSync(join(bed.stateDir, 'keys', k)).mode & 0o777, 0o600);
    assert.equal(statSync(bed.socketPath).mode & 0o777, 0o660);
    assert.equal(statSync(join(bed.dir, 'run')).mode & 0o777, 0o750);
    assert.equal(proc.events('keys.generated').length, 2);
  });

  it('success: activates through systemd-run, verifies against the real remote, makes a real generation', async () => {
    v1 = bed.makeSystem('v1');
    const callsBefore = bed.calls().length;
    const { deployment } = await watcher.request('deploy', { commit: COMMIT_1, toplevel: v1 }, { timeoutMs: 30_000 });
    assert.equal(deployment.outcome, 'succeeded', JSON.stringify(deployment.error));
    assert.equal(deployment.requestedBy, 'watcher');
    assert.deepEqual(deployment.previous, { system: bed.initial, generation: 1, failedUnits: [] });
    assert.equal(deployment.generation, 2);
    assert.deepEqual(deployment.phases.map((p) => p.phase), ['accepted', 'activating', 'verifying', 'committing', 'finished']);
    assert.equal(readlinkSync(bed.profile), 'system-2-link');
    assert.equal(bed.profileTarget(), v1);
    assert.equal(bed.live(), v1);
    // Steps 7-8 (watcher restart, unit comparison) come after the answer: wait until idle.
    while ((await operator.request('status', {})).executor.busy) await new Promise((r) => setTimeout(r, 20));
    const calls = bed.calls().slice(callsBefore).map((c) => c.join(' '));
    const unit = calls.find((c) => c.startsWith('systemd-run'))!;
    // No --pipe (the activation's stdio is the journal's, never the executor's); the executor's
    // own recorder runs switch-to-configuration and keeps its exit status in the state directory.
    assert.match(unit, /^systemd-run --unit=(pullnix-activate-1-[0-9a-f]{6}\.service) --service-type=exec --collect --wait --quiet -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER -- \S+ \S+executor\/dist\/src\/main\.js record-activation --record \S+\/state\/activations\/\1\.json -- /);
    // The failed-units check looks before activation and once after it (the activation moved no unit).
    const listUnits = calls.map((c, i) => (c.startsWith('systemctl list-units') ? i : -1)).filter((i) => i >= 0);
    const activation = calls.findIndex((c) => c.startsWith('systemd-run'));
    assert.ok(listUnits[0]! < activation && listUnits.at(-1)! > activation, calls.join('\n'));
    // The two units' LoadState are asked at once (Promise.all): their order in the log is the scheduler's.
    const seen = calls.filter((c) => !c.startsWith('systemctl list-units')).map((c) => c.replace(/--unit=\S+ .* (\/nix\/store)/, '$1'));
    const loadStates = seen.flatMap((c, i) => (c.includes('--property=LoadState ') ? [i] : []));
    const sortedLoadStates = loadStates.map((i) => seen[i]!).sort();
    loadStates.forEach((i, k) => (seen[i] = sortedLoadStates[k]!));
    assert.deepEqual(
      seen,
      [
        'systemctl cat -- pullnix-executor.service',
        'systemctl cat -- pullnix-watcher.service',
        // the units just before activation, and again at the failed-units check's first look (none moved: no more looks)
        `systemctl show --property=${UNITS_SHOWN} -- *`,
        `systemd-run ${v1}/bin/switch-to-configuration test`,
        `switch-to-configuration ${v1} test`,
        `systemctl show --property=${UNITS_SHOWN} -- *`,
        // pullnix's units as they are now: unchanged, so nothing to start before the commit
        'systemctl cat -- pullnix-executor.service',
        'systemctl cat -- pullnix-watcher.service',
        `nix-env -p ${bed.profile} --set ${v1}`,
        `switch-to-configuration ${v1} boot`,
        'systemctl show --property=LoadState --value -- pullnix-executor.service',
        'systemctl show --property=LoadState --value -- pullnix-watcher.service',
        'systemctl restart -- pullnix-watcher.service',
        'systemctl cat -- pullnix-executor.service',
      ],
    );
    const status = await operator.request('status', {});
    assert.equal(status.deployed?.commit, COMMIT_1);
    assert.equal(status.deployed?.generation, 2);
    assert.equal(status.liveSystem, v1);
  });

  it('the network breaks after activation: verification fails, the previous system is re-activated', async () => {
    const v2 = bed.makeSystem('v2');
    bed.breaksNetwork('v2');
    {
      const { deployment } = await watcher.request('deploy', { commit: COMMIT_2, toplevel: v2 }, { timeoutMs: 30_000 });
      assert.equal(deployment.outcome, 'rolled-back');
      assert.deepEqual(deployment.previous, { system: v1, generation: 2, failedUnits: [] });
      assert.match(deployment.error!.message, /git ls-remote .* failed \d+ times/);
      assert.equal(bed.live(), v1, 'the recorded previous system is live again');
      assert.equal(bed.profileTarget(), v1, 'the boot default never moved');
      assert.equal(readlinkSync(bed.profile), 'system-2-link');
      assert.ok(proc.events('verify.attempt_failed').length >= 2, 'retried with back-off');
      const acts = bed.calls().filter((c) => c[0] === 'switch-to-configuration').slice(-2).map((c) => `${c[1]} ${c[2]}`);
      assert.deepEqual(acts, [`${v2} test`, `${v1} test`]);
    }
    const status = await operator.request('status', {});
    assert.deepEqual(status.knownBad, [COMMIT_2]);
    assert.equal(status.lastFailure?.outcome, 'rolled-back');
    assert.equal(status.deployed?.commit, COMMIT_1);
  });

  it('activation exit 100: reboot-required, nothing rolled back', async () => {
    while ((await operator.request('status', {})).executor.busy) await new Promise((r) => setTimeout(r, 20));
    const v3 = bed.makeSystem('v3');
    bed.setExit('v3', 'test', 100);
    const { deployment } = await watcher.request('deploy', { commit: COMMIT_3, toplevel: v3 }, { timeoutMs: 30_000 });
    assert.equal(deployment.outcome, 'reboot-required');
    assert.equal(deployment.activationExit, 100);
    assert.equal(bed.live(), v1);
    assert.equal(bed.profileTarget(), v1);
    assert.equal(bed.calls().filter((c) => c[0] === 'switch-to-configuration').at(-1)!.join(' '), `switch-to-configuration ${v3} test`);
    assert.equal(proc.events('deploy.reboot_required').length, 1);
  });

  it('a second executor on the same socket refuses to start and leaves the first alone', async () => {
    const second = spawnSync(process.execPath, [EXECUTOR_MAIN, '--config', bed.configPath], { encoding: 'utf8' });
    assert.equal(second.status, 1);
    assert.match(second.stderr, /another executor is already listening on/);
    assert.equal((await operator.request('status', {})).executor.pid, proc.child.pid);
  });

  it('history over the socket: newest first, one entry per deployment', async () => {
    const h = await operator.request('history', {});
    assert.equal(h.total, 3);
    assert.deepEqual(h.deployments.map((d) => [d.id, d.outcome]), [[3, 'reboot-required'], [2, 'rolled-back'], [1, 'succeeded']]);
    const page = await operator.request('history', { limit: 1, before: 3 });
    assert.deepEqual(page.deployments.map((d) => d.id), [2]);
  });

  it('self-upgrade: its own unit changed, so it hands the verified deployment over and exits 0; the next executor commits it once the watcher is up, then rolls back through the pipeline', async () => {
    while ((await operator.request('status', {})).executor.busy) await new Promise((r) => setTimeout(r, 20));
    const v4 = bed.makeSystem('v4');
    bed.setUnitChange('v4', '[Service]\nExecStart=/nix/store/v4/bin/pullnix-executor\nRestart=always\n');
    const { deployment } = await watcher.request('deploy', { commit: COMMIT_4, toplevel: v4 }, { timeoutMs: 30_000 });
    assert.equal(deployment.outcome, null, 'verified, not committed by the old executor');
    assert.equal(deployment.phase, 'verifying');
    const exit = await proc.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(proc.events('executor.self_upgrade').length, 1);
    assert.equal(proc.events('executor.handover_guard').length, 1, 'the guard was started');
    assert.notEqual(bed.profileTarget(), v4, 'the boot default did not move yet');
    // "systemd" starts the new executor: it resumes the deployment and waits for a watcher.
    proc = await ExecutorProcess.start(bed);
    operator = await proc.client('operator');
    const newWatcher = await proc.client('watcher');
    while (proc.events('watcher.restarting').length === 0) await new Promise((r) => setTimeout(r, 20));
    await newWatcher.request('subscribe', { pid: process.pid, version: 'new' });
    await newWatcher.request('report', { state: 'idle', pid: process.pid, version: 'new', remoteHead: null, deployedCommit: null, lastPollAt: null, nextPollAt: null, lastError: null, failedBuilds: [] } as never);
    let committed = (await operator.request('history', { limit: 1 })).deployments[0]!;
    while (committed.outcome === null) {
      await new Promise((r) => setTimeout(r, 50));
      committed = (await operator.request('history', { limit: 1 })).deployments[0]!;
    }
    assert.equal(committed.outcome, 'succeeded', JSON.stringify(committed.error));
    assert.equal(committed.checks?.at(-1)?.name, 'pullnix-start');
    assert.equal(bed.profileTarget(), v4);
    newWatcher.close();
    while ((await operator.request('status', {})).executor.busy) await new Promise((r) => setTimeout(r, 20));
    const r = await operator.request('rollback', {}, { timeoutMs: 30_000 });
    assert.equal(r.deployment.kind, 'rollback');
    assert.equal(r.deployment.toplevel, v1);
    assert.equal(r.deployment.commit, COMMIT_1);
    assert.equal(r.deployment.requestedBy, 'local-root');
    assert.equal(r.deployment.outcome, 'succeeded');
    assert.equal(bed.live(), v1);
    assert.equal(bed.profileTarget(), v1, 'the rolled-back-to system is the boot default again');
    // v1's activation leaves the unit file as it is (the stand-in only writes one for v4): no exit.
    while ((await operator.request('status', {})).executor.busy) await new Promise((r) => setTimeout(r, 20));
    assert.equal(proc.events('executor.self_upgrade').length, 0);
    assert.equal(proc.child.exitCode, null);
  });

  it('SIGTERM: stops accepting, closes the socket, exits 0', async () => {
    operator.close();
    const exit = await proc.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(proc.events('executor.stopping').length === 1);
    assert.equal(existsSync(bed.socketPath), false);
  });
});

describe('executor process: the systems a rollback needs stay alive (real Nix GC roots)', () => {
  let bed: Bed;
  let proc: ExecutorProcess | undefined;
  after(async () => {
    await proc?.stop();
    bed?.cleanup();
  });

  it('a previous system in no profile (an operator\'s nixos-rebuild test) cannot be garbage-collected during verification; the rollback finds it', async () => {
    bed = makeBed({ verify: { timeoutSec: 6, initialBackoffMs: 100, attemptTimeoutSec: 1 } });
    // The live system is not in the profile and nothing else roots it (`nix-store --add` leaves no root).
    const loose = bed.makeSystem('loose');
    const linkTmp = `${bed.currentSystem}.tmp`;
    spawnSync('ln', ['-sfn', loose, linkTmp]);
    spawnSync('mv', ['-T', linkTmp, bed.currentSystem]);
    const next = bed.makeSystem('next');
    bed.breaksNetwork('next');
    proc = await ExecutorProcess.start(bed);
    const watcher = await proc.client('watcher');
    const answer = watcher.request('deploy', { commit: COMMIT_1, toplevel: next }, { timeoutMs: 60_000 });
    await proc.waitFor('verify.attempt_failed');
    // What nix.gc would do to it now: the real collector's own check, on this one path.
    const del = spawnSync('nix-store', ['--delete', loose], { encoding: 'utf8', env: { ...process.env, NIX_CONFIG: 'build-users-group =\nsubstituters =\nexperimental-features = nix-command flakes\nsandbox = false' } });
    assert.notEqual(del.status, 0, `the previous system must be alive (rooted) during the deployment: ${del.stderr}`);
    assert.match(del.stderr, /still alive/);
    assert.ok(existsSync(join(bed.gcRootsDir, 'deployment-1-previous')), 'rooted by the deployment');
    const { deployment } = await answer;
    watcher.close();
    assert.equal(deployment.outcome, 'rolled-back', JSON.stringify(deployment.error));
    assert.equal(bed.live(), loose);
    assert.deepEqual(readdirSync(bed.gcRootsDir), [], 'the roots go with the outcome');
  });
});

describe('executor process: start-up errors', () => {
  it('a bad config exits non-zero naming each key and what was expected', () => {
    const bed = makeBed();
    try {
      writeFileSync(bed.configPath, JSON.stringify({ repository: { url: 'x', branch: 'no spaces allowed' }, build: { mode: 'flake' }, verify: { timeoutSec: 0 }, bogus: 1 }));
      const r = spawnSync(process.execPath, [EXECUTOR_MAIN, '--config', bed.configPath], { encoding: 'utf8' });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /bogus: unknown key/);
      assert.match(r.stderr, /repository\.branch: must match pattern/);
      assert.match(r.stderr, /verify\.timeoutSec: must be >= 1/);
      const missing = spawnSync(process.execPath, [EXECUTOR_MAIN, '--config', join(bed.dir, 'nope.json')], { encoding: 'utf8' });
      assert.notEqual(missing.status, 0);
      assert.match(missing.stderr, /nope\.json[\s\S]*cannot read: ENOENT/);
    } finally {
      bed.cleanup();
    }
  });

  it('--check-config: 0 for a file it would start with, 78 naming the problem for one it would not (the brick of issue 21)', () => {
    const bed = makeBed();
    try {
      const ok = spawnSync(process.execPath, [EXECUTOR_MAIN, '--check-config', '--config', bed.configPath], { encoding: 'utf8' });
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /is a valid configuration/);
      const good = JSON.parse(readFileSync(bed.configPath, 'utf8')) as Record<string, unknown>;
      writeFileSync(bed.configPath, JSON.stringify({ ...good, checks: { api: { type: 'http', url: 'localhost:8080/health' } } }));
      const bad = spawnSync(process.execPath, [EXECUTOR_MAIN, '--check-config', '--config', bed.configPath], { encoding: 'utf8' });
      assert.equal(bad.status, 78);
      assert.match(bad.stderr, /checks\.api\.url: must be an http:\/\/ or https:\/\/ URL/);
      assert.ok(!existsSync(bed.socketPath), 'nothing was started');
    } finally {
      bed.cleanup();
    }
  });

  it('an operator group that does not exist is a clear start-up error', () => {
    const bed = makeBed({ operators: { group: 'no-such-group-pnx' } });
    try {
      const r = spawnSync(process.execPath, [EXECUTOR_MAIN, '--config', bed.configPath], { encoding: 'utf8', env: { ...process.env } });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /operator group "no-such-group-pnx" does not exist/);
    } finally {
      bed.cleanup();
    }
  });

  it('--version and --help', () => {
    assert.match(spawnSync(process.execPath, [EXECUTOR_MAIN, '--version'], { encoding: 'utf8' }).stdout, /^pullnix-executor \d+\.\d+\.\d+/);
    const help = spawnSync(process.execPath, [EXECUTOR_MAIN, '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--config FILE/);
  });
});
