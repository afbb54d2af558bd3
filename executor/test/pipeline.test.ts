/**
 * The deployment pipeline (DESIGN.md steps 2-8) against a fake Runner and a fake clock: every
 * outcome, the exact commands in order, and what the history and state remember.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { recordedCommand, stripSystemdRun, COMMIT_A, COMMIT_B, type FakeSystem } from './lib/fake-system.ts';
import { harness, type Harness } from './lib/harness.ts';

let h: Harness;
afterEach(() => h?.sys.cleanup());

function phases(h: Harness, id: number): string[] {
  return h.executor.history.get(id)!.phases.map((p) => p.phase);
}

async function deploy(h: Harness, commit: string, toplevel: string) {
  const record = await h.executor.deploy({ commit, toplevel }, 'watcher');
  await h.executor.idle();
  return record;
}

describe('pipeline: test mode', () => {
  it('success: activate with test via systemd-run, verify, nix-env --set, boot, restart the watcher', async () => {
    h = harness();
    const next = h.sys.makeSystem('new-system');
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'succeeded');
    assert.equal(record.error, null);
    assert.equal(record.activationExit, 0);
    assert.deepEqual(record.previous, { system: h.old, generation: 1, failedUnits: [] });
    assert.equal(record.bootId, 'boot-1');
    assert.equal(record.generation, 2);
    assert.deepEqual(phases(h, record.id), ['accepted', 'activating', 'verifying', 'committing', 'finished']);
    assert.equal(h.sys.live(), next);
    assert.equal(h.sys.profileTarget(), next);
    // The exact command sequence, the pipeline's contract with the machine.
    const programs = h.sys.calls.map((c) => (c[0] === 'systemd-run' ? `systemd-run ${recordedCommand(stripSystemdRun(c)).command.join(' ')}` : c.slice(0, 3).join(' ')));
    assert.deepEqual(programs, [
      'systemctl cat --', // the executor's unit and the watcher's, before (step 8, handover.ts)
      'systemctl cat --',
      'nix-store --check-validity --',
      'systemctl list-units --all', // failed units before anything changes
      'systemctl show --property=Id,InvocationID,NRestarts,ActiveEnterTimestampMonotonic,Restart,RestartUSec,RestartUSecNext,StartLimitIntervalUSec,StartLimitBurst', // the units just before activation
      `systemd-run ${next}/bin/switch-to-configuration test`,
      'git ls-remote --',
      // the failed-units check: one look, and the units again; none moved, so nothing to wait for
      'systemctl list-units --all',
      'systemctl show --property=Id,InvocationID,NRestarts,ActiveEnterTimestampMonotonic,Restart,RestartUSec,RestartUSecNext,StartLimitIntervalUSec,StartLimitBurst',
      'systemctl cat --', // pullnix's units unchanged: nothing to start before the commit
      'systemctl cat --',
      `nix-env -p ${h.sys.profile}`,
      `${next}/bin/switch-to-configuration boot`,
      'systemctl show --property=LoadState',
      'systemctl show --property=LoadState',
      'systemctl restart --',
      'systemctl cat --',
    ]);
    const run = h.sys.calls.find((c) => c[0] === 'systemd-run')!;
    assert.match(run[1]!, new RegExp(`^--unit=pullnix-activate-${record.id}-[0-9a-f]{6}\\.service$`));
    for (const flag of ['--service-type=exec', '--collect', '--wait', '--quiet']) assert.ok(run.includes(flag), flag);
    // Not --pipe: the activation's stdio must not be the executor's (EPIPE kills stc-ng half-way
    // when the executor dies); its output goes to the journal, its exit status into a record.
    assert.ok(!run.includes('--pipe'), `no --pipe: ${run.join(' ')}`);
    const inner = recordedCommand(stripSystemdRun(run));
    assert.equal(inner.recordPath, join(h.sys.stateDir, 'activations', `${run[1]!.slice('--unit='.length)}.json`));
    assert.deepEqual(stripSystemdRun(run).slice(0, 3), [process.execPath, process.argv[1], 'record-activation']);
    assert.ok(!existsSync(inner.recordPath!), 'the activation record is removed once the outcome is recorded');
    assert.deepEqual(readdirSync(h.sys.gcRootsDir), [], 'no GC root of a finished deployment is left');
    assert.deepEqual(h.sys.calls.find((c) => c[0] === 'git'), ['git', 'ls-remote', '--', 'file:///fake/remote.git', 'refs/heads/main']);
    assert.deepEqual(h.sys.calls.find((c) => c[1] === 'restart'), ['systemctl', 'restart', '--', 'pullnix-watcher.service']);
    const status = h.executor.status();
    assert.equal(status.deployed?.commit, COMMIT_A);
    assert.equal(status.deployed?.generation, 2);
    assert.equal(status.lastFailure, null);
    assert.equal(status.executor.busy, false);
    assert.deepEqual(status.knownBad, []);
    assert.equal(h.selfUpgrades, 0);
    // One snapshot per phase change, all for the same id.
    assert.equal(h.lines().length, 5);
  });

  for (const [exit, meaning] of [
    [2, 'the activation script failed'],
    [4, 'some units failed'],
    [1, 'activation failed'],
  ] as const) {
    it(`activation exit ${exit}: re-activate the recorded previous system, outcome rolled-back, commit remembered`, async () => {
      h = harness();
      const next = h.sys.makeSystem('new-system');
      h.sys.stcExit.set(`${next} test`, exit);
      const record = await deploy(h, COMMIT_A, next);
      assert.equal(record.outcome, 'rolled-back');
      assert.equal(record.error?.code, 'ACTIVATION_FAILED');
      assert.equal(record.activationExit, exit);
      assert.match(record.error!.message, new RegExp(`exited ${exit} \\(${meaning}\\)`));
      assert.deepEqual(phases(h, record.id), ['accepted', 'activating', 'rolling-back', 'finished']);
      assert.deepEqual(h.sys.activations(), [`${next} test`, `${h.old} test`]);
      assert.equal(h.sys.programCalls('nix-env').length, 0, 'the profile is never touched');
      assert.equal(h.sys.programCalls('git').length, 1, 'git is checked once: after the rollback, to judge it');
      assert.equal(h.sys.live(), h.old);
      assert.equal(h.sys.profileTarget(), h.old);
      assert.ok(h.executor.state.state.knownBad[COMMIT_A]);
      assert.equal(h.executor.status().lastFailure?.outcome, 'rolled-back');
      assert.ok(h.sys.calls.some((c) => c[1] === 'restart'), 'the watcher is restarted after a rollback');
      assert.ok(h.log.names().includes('deploy.activation_failed'));
    });
  }

  it('activation exit 100: reboot-required, nothing rolled back, boot default untouched, commit remembered', async () => {
    h = harness();
    const next = h.sys.makeSystem('new-kernel');
    h.sys.stcExit.set(`${next} test`, 100);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'reboot-required');
    assert.equal(record.error?.code, 'REBOOT_REQUIRED');
    assert.equal(record.activationExit, 100);
    assert.deepEqual(phases(h, record.id), ['accepted', 'activating', 'finished']);
    assert.deepEqual(h.sys.activations(), [`${next} test`]);
    assert.equal(h.sys.programCalls('nix-env').length, 0);
    assert.equal(h.sys.profileTarget(), h.old);
    assert.equal(h.sys.live(), h.old);
    assert.match(h.executor.state.state.knownBad[COMMIT_A]!.reason, /reboot-required/);
    assert.ok(h.log.names().includes('deploy.reboot_required'));
    assert.ok(!h.sys.calls.some((c) => c[1] === 'restart'), 'nothing was activated, so the watcher keeps running');
    assert.equal(h.executor.state.state.paused, null);
  });

  it('a timed-out activation or a systemd-run that cannot start is rolled back like exit 2', async () => {
    h = harness();
    const next = h.sys.makeSystem('slow');
    let n = 0;
    h.sys.hooks.set('systemd-run', () => (++n === 1 ? { exitCode: null, timedOut: true, signal: 'SIGTERM' } : {}));
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    assert.equal(record.activationExit, null);
    assert.match(record.error!.message, /did not finish within the activation timeout/);
    h.sys.hooks.set('systemd-run', () => (++n === 3 ? { exitCode: null, spawnError: 'ENOENT' } : {}));
    const second = await deploy(h, COMMIT_B, h.sys.makeSystem('other'));
    assert.equal(second.outcome, 'rolled-back');
    assert.match(second.error!.message, /systemd-run could not start the activation: ENOENT/);
  });

  it('verification failing until verify.timeoutSec: back-off doubles, then rollback', async () => {
    h = harness();
    const next = h.sys.makeSystem('no-network');
    h.sys.networkBreakers.add(next);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    assert.equal(record.error?.code, 'VERIFY_FAILED');
    assert.deepEqual(phases(h, record.id), ['accepted', 'activating', 'verifying', 'rolling-back', 'finished']);
    // timeoutSec 10, initial 1000 ms: attempts at 0, 1, 3, 7 s, and a last one at the deadline (10 s).
    assert.deepEqual(h.clock.sleeps, [1000, 2000, 4000, 3000]);
    assert.equal(h.sys.programCalls('git').length, 6, 'five attempts, then one after the rollback, which answers');
    assert.match(record.error!.message, /failed 5 times within verify\.timeoutSec=10; last: git exited 128: fatal: unable to access remote/);
    assert.deepEqual(h.sys.activations(), [`${next} test`, `${h.old} test`]);
    assert.equal(h.sys.programCalls('nix-env').length, 0);
    assert.equal(h.sys.live(), h.old);
    assert.equal(h.log.names().filter((n) => n === 'verify.attempt_failed').length, 5);
  });

  it('a remote that answers exactly at verify.timeoutSec still passes (a last attempt at the deadline)', async () => {
    h = harness();
    h.sys.gitResults = [128, 128, 128, 128];
    const record = await deploy(h, COMMIT_A, h.sys.makeSystem('late-network'));
    assert.equal(record.outcome, 'succeeded');
    assert.deepEqual(h.clock.sleeps, [1000, 2000, 4000, 3000]);
    assert.equal(h.clock.sleeps.reduce((a, b) => a + b, 0), 10_000, 'the last attempt is at the deadline, not before');
  });

  it('the back-off is capped at 15 s', async () => {
    h = harness({ verify: { timeoutSec: 60, initialBackoffMs: 1000, attemptTimeoutSec: 5 } });
    const next = h.sys.makeSystem('x');
    h.sys.networkBreakers.add(next);
    await deploy(h, COMMIT_A, next);
    assert.deepEqual(h.clock.sleeps, [1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });

  it('verification passing on a late retry commits', async () => {
    h = harness();
    h.sys.gitResults = [128, 128, 128];
    const next = h.sys.makeSystem('slow-network');
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'succeeded');
    assert.equal(h.sys.programCalls('git').length, 4);
    // git's back-off; then the failed-units check, which has no unit to wait for.
    assert.deepEqual(h.clock.sleeps, [1000, 2000, 4000]);
    assert.equal(h.sys.profileTarget(), next);
    assert.equal(h.executor.status().deployed?.commit, COMMIT_A);
  });

  it('every line about a deployment carries deployment= and commit= (journal key fields)', async () => {
    h = harness();
    const next = h.sys.makeSystem('no-network');
    h.sys.networkBreakers.add(next); // verification fails: the longest path, through rollback
    await deploy(h, COMMIT_A, next);
    const lines = h.log.events.filter((e) => /^(deploy|verify)\./.test(e.name));
    assert.ok(lines.length >= 7, lines.map((e) => e.name).join(' '));
    for (const e of lines) {
      assert.equal(e.fields.commit, COMMIT_A, `${e.name} lacks commit=`);
      assert.equal(typeof e.fields.deployment, 'number', `${e.name} lacks deployment=`);
    }
  });

  it('rollback itself failing: rollback-failed, the executor pauses itself, nothing retried', async () => {
    h = harness();
    const next = h.sys.makeSystem('broken');
    h.sys.stcExit.set(`${next} test`, 2);
    h.sys.stcExit.set(`${h.old} test`, 2);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rollback-failed');
    assert.equal(record.error?.code, 'ROLLBACK_FAILED');
    assert.match(record.error!.message, /rollback failed: switch-to-configuration exited 2/);
    assert.deepEqual(h.sys.activations(), [`${next} test`, `${h.old} test`], 'one rollback attempt, no loop');
    const paused = h.executor.state.state.paused;
    assert.equal(paused?.by, 'executor');
    assert.match(paused!.reason!, new RegExp(`deployment ${record.id} .* failed to roll back`));
    assert.ok(h.log.names().includes('deploy.rollback_failed'));
    assert.ok(h.log.names().includes('control.paused'));
    assert.ok(!h.sys.calls.some((c) => c[1] === 'restart'), 'the system is in an unknown state: the watcher is left alone');
    // Nothing is tried again on its own: a new commit is refused until an operator resumes.
    const before = h.sys.calls.length;
    assert.throws(() => h.executor.deploy({ commit: COMMIT_B, toplevel: h.sys.makeSystem('next') }, 'watcher'), { code: 'PAUSED' });
    assert.equal(h.sys.calls.length, before);
    // The pause survives a restart of the executor.
    assert.equal(h.reopen().state.state.paused?.by, 'executor');
  });

  it('commit-phase failure after verification: profile and boot entry back to the previous system, re-activate it', async () => {
    h = harness();
    const next = h.sys.makeSystem('no-bootloader');
    h.sys.stcExit.set(`${next} boot`, 1);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    assert.equal(record.error?.code, 'COMMIT_FAILED');
    assert.match(record.error!.message, /commit phase failed after verification: switch-to-configuration boot failed/);
    assert.deepEqual(phases(h, record.id), ['accepted', 'activating', 'verifying', 'committing', 'rolling-back', 'finished']);
    assert.deepEqual(h.sys.activations(), [`${next} test`, `${next} boot (direct)`, `${h.old} boot (direct)`, `${h.old} test`]);
    assert.equal(h.sys.profileTarget(), h.old, 'the profile points at the previous system again');
    assert.equal(h.sys.live(), h.old);
    assert.ok(h.log.names().includes('deploy.commit_failed'));
    assert.ok(h.executor.state.state.knownBad[COMMIT_A]);
  });

  it('a failed commit restores the recorded boot generation, not the live system (after an operator\'s nixos-rebuild test)', async () => {
    h = harness();
    const tested = h.sys.makeSystem('tested-by-hand');
    h.sys.repoint(tested); // live, but never the boot default
    const next = h.sys.makeSystem('no-bootloader');
    h.sys.stcExit.set(`${next} boot`, 1);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    assert.equal(record.previous.system, tested);
    assert.equal(h.sys.profileTarget(), h.old, 'the boot default is the generation it was, not the hand-tested system');
    assert.deepEqual(h.sys.activations(), [`${next} test`, `${next} boot (direct)`, `${h.old} boot (direct)`, `${tested} test`]);
    assert.equal(h.sys.live(), tested, 'and what was live is live again');
  });

  it('a failing nix-env --set is a commit-phase failure too', async () => {
    h = harness();
    h.sys.nixEnvExit = 1;
    const record = await deploy(h, COMMIT_A, h.sys.makeSystem('x'));
    assert.equal(record.outcome, 'rolled-back');
    assert.match(record.error!.message, /nix-env --set failed/);
    assert.equal(h.sys.live(), h.old);
  });

  describe("the machine's failures under nix-env are retried, not counted against the commit (issue 21, part 3)", () => {
    /** Nix's words when the nix-daemon restarts (shared/src/fault.ts), and when it died mid-connection. */
    const DAEMON_RESTARTING = [
      { exitCode: 1, stderr: "error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Connection refused\n" },
      { exitCode: 1, stderr: 'error: unexpected end-of-file\n' },
    ];

    it("the commit phase's nix-env --set: run again after a pause, then committed", async () => {
      h = harness();
      h.sys.nixEnvFailures = [...DAEMON_RESTARTING];
      const next = h.sys.makeSystem('x');
      const record = await deploy(h, COMMIT_A, next);
      assert.equal(record.outcome, 'succeeded', JSON.stringify(record.error));
      assert.equal(h.sys.profileTarget(), next);
      assert.equal(h.sys.programCalls('nix-env').length, 3);
      assert.deepEqual(h.log.events.filter((e) => e.name === 'deploy.machine_fault').map((e) => [e.fields.attempt, e.fields.retry_ms]), [[1, 1000], [2, 2000]]);
      assert.deepEqual(Object.keys(h.executor.state.state.knownBad), []);
    });

    it('switch mode and the rollback: the same', async () => {
      h = harness({ activation: 'switch' });
      const next = h.sys.makeSystem('y');
      h.sys.stcExit.set(`${next} switch`, 2);
      h.sys.nixEnvFailures = [DAEMON_RESTARTING[0]!, {}, DAEMON_RESTARTING[1]!];
      const record = await deploy(h, COMMIT_A, next);
      assert.equal(record.outcome, 'rolled-back', 'rolled back for the activation, not the daemon');
      assert.match(record.error!.message, /switch-to-configuration exited 2/);
      assert.equal(h.sys.profileTarget(), h.old);
    });

    it("a failure that is nix-env's own is not retried; a machine's fault that outlasts the pauses still fails", async () => {
      h = harness();
      h.sys.nixEnvFailures = [{ exitCode: 1, stderr: "error: path '/nix/store/x' is not valid\n" }];
      const own = await deploy(h, COMMIT_A, h.sys.makeSystem('own'));
      assert.equal(own.outcome, 'rolled-back');
      assert.equal(h.log.events.filter((e) => e.name === 'deploy.machine_fault').length, 0);
      h.sys.cleanup();
      h = harness();
      h.sys.nixEnvFailures = Array.from({ length: 6 }, () => DAEMON_RESTARTING[0]!);
      const gone = await deploy(h, COMMIT_B, h.sys.makeSystem('gone'));
      assert.equal(gone.outcome, 'rolled-back');
      assert.match(gone.error!.message, /nix-env --set failed: .*Connection refused/);
      assert.equal(h.log.events.filter((e) => e.name === 'deploy.machine_fault').length, 5);
    });
  });

  it('no recorded previous system: the rollback cannot happen and says why', async () => {
    h = harness({}, (sys: FakeSystem) => sys.cleanupLive());
    const next = h.sys.makeSystem('first');
    h.sys.stcExit.set(`${next} test`, 2);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rollback-failed');
    assert.match(record.error!.message, /no previous system was recorded/);
  });
});

describe('pipeline: switch mode', () => {
  it('success: nix-env --set, then switch through systemd-run, verify; no separate boot step', async () => {
    h = harness({ activation: 'switch' });
    const next = h.sys.makeSystem('new-system');
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'succeeded');
    assert.equal(record.activation, 'switch');
    assert.equal(record.generation, 2);
    assert.deepEqual(h.sys.activations(), [`${next} switch`]);
    const order = h.sys.calls.map((c) => c[0]).filter((p) => p !== 'systemctl');
    assert.deepEqual(order, ['nix-store', 'nix-env', 'systemd-run', 'git']);
    assert.equal(h.sys.profileTarget(), next);
  });

  it('verification failing: nix-env --set <previous> and <previous> switch', async () => {
    h = harness({ activation: 'switch', verify: { timeoutSec: 1, initialBackoffMs: 500, attemptTimeoutSec: 1 } });
    const next = h.sys.makeSystem('no-network');
    h.sys.networkBreakers.add(next);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'rolled-back');
    assert.deepEqual(h.sys.activations(), [`${next} switch`, `${h.old} switch`]);
    const sets = h.sys.programCalls('nix-env').map((c) => c.at(-1));
    assert.deepEqual(sets, [next, h.old]);
    assert.equal(h.sys.profileTarget(), h.old);
    assert.equal(h.sys.live(), h.old);
  });

  it('exit 100 in switch mode puts the profile back (the boot default stays the running system)', async () => {
    h = harness({ activation: 'switch' });
    const next = h.sys.makeSystem('new-kernel');
    h.sys.stcExit.set(`${next} switch`, 100);
    const record = await deploy(h, COMMIT_A, next);
    assert.equal(record.outcome, 'reboot-required');
    assert.equal(h.sys.profileTarget(), h.old);
    assert.deepEqual(h.sys.activations(), [`${next} switch`, `${h.old} boot (direct)`]);
  });
});

describe('step 8: self-upgrade', () => {
  it('exits once idle when systemctl cat of its own unit changed during the deployment', async () => {
    h = harness();
    const next = h.sys.makeSystem('new-executor');
    h.sys.hooks.set('git', () => {
      h.sys.unitText = '[Service]\nExecStart=/nix/store/new/bin/pullnix-executor\n';
      return {};
    });
    await deploy(h, COMMIT_A, next);
    assert.equal(h.selfUpgrades, 1);
    assert.ok(h.log.names().includes('executor.self_upgrade'));
    // Once it decided to exit, it takes nothing new.
    assert.throws(() => h.executor.deploy({ commit: COMMIT_B, toplevel: h.sys.makeSystem('y') }, 'watcher'), { code: 'BUSY' });
  });

  it('stays when the unit did not change, or cannot be read', async () => {
    h = harness();
    await deploy(h, COMMIT_A, h.sys.makeSystem('a'));
    h.sys.unitText = null;
    await deploy(h, COMMIT_B, h.sys.makeSystem('b'));
    assert.equal(h.selfUpgrades, 0);
  });
});
