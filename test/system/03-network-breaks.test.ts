/**
 * Scenario 3 — the network breaks. A commit whose activation stops the SSH git server (its
 * generation no longer has the sshd unit, so the switch stops it). Verification fails within
 * verify.timeoutSec, the previous system is re-activated, git is reachable again, the history says
 * rolled back and why, the boot default never moved, the commit is not retried; the next good
 * commit deploys.
 *
 *   main: c1 (installed) ─ c2 (no git server: rolled back) ─ c3 (good: deployed)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { short } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { assertEventSequence, installed, ofDeployment, phasesOf, withBed } from './lib/scenario.ts';

const VERIFY_TIMEOUT_SEC = 6;

test('network breaks: verification fails, the previous system comes back, the commit is not retried, the next one deploys', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'network-breaks', verifyTimeoutSec: VERIFY_TIMEOUT_SEC }, async (bed) => {
    const first = await installed(bed);
    const bootLogBefore = bed.bootLog();
    const generationsBefore = await bed.profileGenerations();

    const c2 = await bed.commit({ label: 'no-git', gitServer: false }, 'drop the git server (breaks connectivity)');
    const record = await bed.waitForOutcome(c2);

    assert.equal(record.outcome, 'rolled-back', `deployment of ${short(c2)}: ${JSON.stringify(record)}`);
    assert.deepEqual(phasesOf(record), ['accepted', 'activating', 'verifying', 'rolling-back', 'finished']);
    assert.equal(record.activationExit, 0, 'the broken generation activated fine; only verification failed');
    assert.ok(record.error, 'the history says why');
    assert.equal(record.error.code, 'VERIFY_FAILED', `reason: ${JSON.stringify(record.error)}`);
    assert.match(record.error.message, /git ls-remote .* failed \d+ times within verify\.timeoutSec/);
    // The cause, from ssh's own line, not git's "Could not read from remote repository" boilerplate.
    assert.match(record.error.message, /last: git exited \d+: ssh: connect to host \S+ port \d+: Connection refused$/);
    assert.equal(record.previous.system, first.toplevel);

    // It kept trying for the whole of verify.timeoutSec (a last attempt at the deadline), and not much longer.
    const at = (phase: string) => Date.parse(record.phases.find((p) => p.phase === phase)!.at);
    const verifyMs = at('rolling-back') - at('verifying');
    assert.ok(verifyMs >= VERIFY_TIMEOUT_SEC * 1000, `verification gave up after ${verifyMs} ms, before verify.timeoutSec=${VERIFY_TIMEOUT_SEC}`);
    assert.ok(verifyMs <= (VERIFY_TIMEOUT_SEC + 10) * 1000, `verification took ${verifyMs} ms, far beyond verify.timeoutSec=${VERIFY_TIMEOUT_SEC}`);

    // The previous system is live again and git answers; the boot default never moved.
    assert.equal(await bed.liveSystem(), first.toplevel, 'the previous system was re-activated');
    assert.equal(await bed.unitProperty('bed-git-sshd.service', 'ActiveState'), 'active', 'the git server runs again');
    assert.ok(await bed.gitReachable(), 'git is reachable again');
    assert.equal(bed.bootDefault(), first.toplevel, 'boot default never moved');
    assert.deepEqual(bed.bootLog(), bootLogBefore, 'switch-to-configuration boot never ran');
    assert.deepEqual(await bed.profileGenerations(), generationsBefore, 'no new system profile generation');

    // The switch really stopped the git server, and the rollback really started it again.
    const activations = await bed.activationLog();
    const broken = activations.findIndex((a) => a.action === 'test' && a.text === `start toplevel=${record.toplevel}`);
    assert.ok(broken >= 0);
    assert.match(activations.slice(broken).find((a) => a.text.startsWith('not-restarted='))!.text, /stopped=bed-git-sshd\.service /);
    assert.ok(
      activations.slice(broken).some((a) => a.action === 'test' && a.text === `start toplevel=${first.toplevel}`),
      'the previous system was activated again with switch-to-configuration test',
    );

    // The journal: attempts at warning, the failure at error, the rollback at warning.
    await bed.waitForWatcherRestart(record.id);
    const entries = await bed.journal();
    const lines = ofDeployment(entries, record.id).filter((e) => e.unit === 'pullnix-executor.service');
    assertEventSequence(
      lines,
      ['deploy.accepted', 'deploy.activating', 'deploy.activated', 'deploy.verifying', 'verify.attempt_failed', 'deploy.verify_failed', 'deploy.rolling_back', 'deploy.rolled_back', 'watcher.restarting'],
      `executor journal of deployment ${record.id}`,
    );
    assert.ok(lines.filter((e) => e.event === 'verify.attempt_failed').length >= 2, 'verification was retried');

    // Not retried: the restarted watcher sees the same head (poll.unchanged or head.known_bad) and leaves it.
    const rolledBackAt = new Date(record.finishedAt!);
    const pollsAfter = async () =>
      (await bed.journal(['pullnix-watcher.service'])).filter((e) => e.at > rolledBackAt && (e.event === 'head.known_bad' || e.event === 'poll.unchanged') && e.fields.commit === c2)
        .length;
    await waitFor('three polls of the known-bad head', async () => (await pollsAfter()) >= 3, { timeoutMs: 30_000 });
    assert.equal(bed.deploymentsOf(c2).length, 1, 'the failed commit was not deployed again');
    const status = await bed.status();
    assert.ok(status.knownBad.includes(c2), `status.knownBad: ${JSON.stringify(status.knownBad)}`);
    assert.equal(status.lastFailure?.commit, c2);
    assert.equal(status.deployed?.commit, first.commit);

    // The next good commit deploys.
    const c3 = await bed.commit({ label: 'gen3' }, 'a good configuration again');
    const next = await bed.waitForOutcome(c3);
    assert.equal(next.outcome, 'succeeded', JSON.stringify(next));
    assert.equal(next.previous.system, first.toplevel);
    assert.equal(bed.bootDefault(), next.toplevel);
    assert.equal(await bed.liveSystem(), next.toplevel);
  });
});
