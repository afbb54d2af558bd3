/**
 * Crash recovery with a real process: the executor is SIGKILLed while it verifies (the remote is
 * unreachable, so it keeps retrying), started again, and resolves the deployment. The history
 * keeps every record it had before the kill.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { ConnectError, type DeploymentRecord } from '@pullnix/shared';
import { COMMIT_1, COMMIT_2, ExecutorProcess, makeBed, type Bed } from '../lib/executor-fixtures.ts';

async function waitUntil(ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function historyLines(bed: Bed): string[] {
  return readFileSync(join(bed.stateDir, 'history.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
}

/** Deploy `name` with the remote gone, and SIGKILL the executor once it has retried verification. */
async function killDuringVerification(bed: Bed, commit: string, name: string): Promise<{ toplevel: string; before: string[] }> {
  const toplevel = bed.makeSystem(name);
  const proc = await ExecutorProcess.start(bed);
  const watcher = await proc.client('watcher');
  bed.breaksNetwork(name);
  const answer = watcher.request('deploy', { commit, toplevel }, { timeoutMs: 60_000 }).catch((e: unknown) => e);
  await proc.waitFor('verify.attempt_failed', 2);
  const exit = await proc.stop('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  assert.ok((await answer) instanceof ConnectError, 'the client sees the connection drop, not an answer');
  watcher.close();
  const before = historyLines(bed);
  const last = JSON.parse(before.at(-1)!) as DeploymentRecord;
  assert.equal(last.phase, 'verifying');
  assert.equal(last.outcome, null);
  assert.equal(bed.live(), toplevel, 'the new system is live: activation had finished');
  return { toplevel, before };
}

describe('executor crash recovery (SIGKILL during verification)', () => {
  let bed: Bed;
  let proc: ExecutorProcess | undefined;
  afterEach(async () => {
    await proc?.stop();
    proc = undefined;
    bed?.cleanup();
  });

  it('remote back on restart: verifies again and commits', async () => {
    bed = makeBed({ verify: { timeoutSec: 120, initialBackoffMs: 50, attemptTimeoutSec: 1 } });
    const { toplevel, before } = await killDuringVerification(bed, COMMIT_1, 'v1');
    bed.healNetwork();
    proc = await ExecutorProcess.start(bed);
    // First it waits for the activation's transient unit (gone: the executor died after it), then verifies.
    const waiting = await proc.waitFor('deploy.recovering');
    assert.equal(waiting.action, 'wait');
    assert.match(waiting.unit ?? '', /^pullnix-activate-1-[0-9a-f]{6}\.service$/);
    const recovering = await proc.waitFor('deploy.recovering', 2);
    assert.equal(recovering.deployment, '1');
    assert.equal(recovering.action, 'verify');
    await proc.waitFor('deploy.succeeded');
    const operator = await proc.client('operator');
    const { deployments } = await operator.request('history', {});
    assert.equal(deployments.length, 1);
    assert.equal(deployments[0]!.outcome, 'succeeded');
    assert.equal(deployments[0]!.generation, 2);
    assert.equal(bed.profileTarget(), toplevel);
    // Append-only: every line written before the kill is still there, in order, unchanged.
    assert.deepEqual(historyLines(bed).slice(0, before.length), before);
    assert.ok(historyLines(bed).length > before.length);
    operator.close();
  });

  it('remote still unreachable on restart: verification fails again, previous system re-activated', async () => {
    bed = makeBed({ verify: { timeoutSec: 120, initialBackoffMs: 50, attemptTimeoutSec: 1 } });
    const { before } = await killDuringVerification(bed, COMMIT_2, 'v2');
    // A short verification window for the restarted executor, so the test stays fast.
    bed.writeConfig({ verify: { timeoutSec: 1, initialBackoffMs: 50, attemptTimeoutSec: 1 } });
    proc = await ExecutorProcess.start(bed);
    await proc.waitFor('deploy.recovering');
    const rolled = await proc.waitFor('deploy.rolled_back');
    assert.equal(rolled.deployment, '1');
    assert.equal(bed.live(), bed.initial);
    assert.equal(bed.profileTarget(), bed.initial);
    const operator = await proc.client('operator');
    const status = await operator.request('status', {});
    assert.deepEqual(status.knownBad, [COMMIT_2]);
    assert.deepEqual(historyLines(bed).slice(0, before.length), before);
    operator.close();
  });

  it('SIGKILLed while the activation runs, which then fails (exit 4, current-system already repointed): rolled back, never committed', async () => {
    bed = makeBed({ verify: { timeoutSec: 5, initialBackoffMs: 50, attemptTimeoutSec: 1 } });
    const v3 = bed.makeSystem('v3');
    bed.hold('v3', 'test');
    proc = await ExecutorProcess.start(bed);
    const watcher = await proc.client('watcher');
    void watcher.request('deploy', { commit: COMMIT_1, toplevel: v3 }, { timeoutMs: 60_000 }).catch(() => {});
    await proc.waitFor('deploy.activating');
    await waitUntil(() => bed.calls().some((c) => c[0] === 'switch-to-configuration' && c[1] === v3));
    await proc.stop('SIGKILL');
    watcher.close();
    // The activation goes on without the executor (its own process, like the transient unit), and
    // fails the NixOS way: the activation script repointed current-system, then units failed.
    bed.setExit('v3', 'test', 4);
    bed.release('v3', 'test');
    await waitUntil(() => bed.live() === v3);
    proc = await ExecutorProcess.start(bed);
    const rolled = await proc.waitFor('deploy.rolled_back');
    assert.equal(rolled.deployment, '1');
    const last = JSON.parse(historyLines(bed).at(-1)!) as DeploymentRecord;
    assert.equal(last.outcome, 'rolled-back');
    assert.equal(last.activationExit, 4, "the activation's exit status survived the executor");
    assert.equal(bed.live(), bed.initial, 'the previous system is live again');
    assert.equal(bed.profileTarget(), bed.initial, 'the boot default never moved');
    const operator = await proc.client('operator');
    assert.deepEqual((await operator.request('status', {})).knownBad, [COMMIT_1]);
    operator.close();
  });
});
