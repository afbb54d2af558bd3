/**
 * Crash recovery and damaged files, in-process: an executor "dies" (is dropped mid-deployment,
 * its files stay as they were) and a new one opens the same state directory.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { COMMIT_A, COMMIT_B } from './lib/fake-system.ts';
import { harness, type Harness } from './lib/harness.ts';

let h: Harness;
afterEach(() => h?.sys.cleanup());

/** Start a deployment and leave it hanging at the first call of `program` (the "crash"). */
async function dieAt(h: Harness, program: string, commit: string, toplevel: string): Promise<void> {
  const seen = h.sys.calls.filter((c) => c[0] === program).length;
  h.sys.hooks.set(program, () => new Promise(() => {}));
  void h.executor.deploy({ commit, toplevel }, 'watcher');
  while (h.sys.calls.filter((c) => c[0] === program).length === seen) await new Promise((r) => setImmediate(r));
  h.sys.hooks.delete(program);
}

describe('crash recovery on start', () => {
  it('toplevel live (died while verifying): verify again, then commit; every record kept', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    await dieAt(h, 'git', COMMIT_A, next);
    const linesBefore = h.lines();
    assert.equal(linesBefore.at(-1)!.phase, 'verifying');
    const e = h.reopen();
    await e.recover();
    await e.idle();
    const r = e.history.get(1)!;
    assert.equal(r.outcome, 'succeeded');
    assert.equal(h.sys.profileTarget(), next);
    assert.ok(h.log.names().includes('deploy.recovering'));
    // Append-only: the earlier lines are still the file's first lines, byte for byte.
    assert.deepEqual(h.lines().slice(0, linesBefore.length), linesBefore);
    assert.equal(e.state.state.current, null);
  });

  it('toplevel live, remote still unreachable: verify fails again and it rolls back', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    await dieAt(h, 'git', COMMIT_A, next);
    h.sys.networkBreakers.add(next); // the new system broke the network; the rollback mends it
    const e = h.reopen();
    await e.recover();
    await e.idle();
    assert.equal(e.history.get(1)!.outcome, 'rolled-back');
    assert.equal(h.sys.live(), h.old);
    assert.ok(e.state.state.knownBad[COMMIT_A]);
  });

  it('died during activation while the activation still runs in its unit: wait for the unit, then judge the live system', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    await dieAt(h, 'systemd-run', COMMIT_A, next);
    const unit = h.lines().at(-1)!.phases.at(-1)!.unit!;
    assert.match(unit, /^pullnix-activate-1-[0-9a-f]{6}\.service$/, 'the unit is in the history before it starts');
    // The transient unit outlives the executor: it answers "active" three more times, then its
    // activation has finished (the toplevel is live) and it is gone.
    h.sys.unitPolls.set(unit, 3);
    h.sys.hooks.set('systemctl', (argv) => {
      if (argv[1] === 'show' && h.sys.unitPolls.get(unit) === 0) h.sys.repoint(next);
      return {};
    });
    const e = h.reopen();
    await e.recover();
    await e.idle();
    const shows = h.sys.programCalls('systemctl').filter((c) => c[1] === 'show' && c.at(-1) === unit);
    assert.equal(shows.length, 4, 'polled until the unit was gone');
    const r = e.history.get(1)!;
    assert.equal(r.outcome, 'succeeded', 'judged after the activation finished: verified and committed, not "interrupted"');
    assert.equal(h.sys.profileTarget(), next);
  });

  it('died while rolling back: the rollback runs again (a live previous system does not prove exit 0)', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    h.sys.networkBreakers.add(next);
    // Die at the rollback's activation: the second systemd-run.
    let runs = 0;
    h.sys.hooks.set('systemd-run', () => (++runs === 2 ? new Promise(() => {}) : {}));
    void h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    while (runs < 2) await new Promise((r) => setImmediate(r));
    h.sys.hooks.delete('systemd-run');
    h.sys.repoint(h.old); // the rollback's activation got as far as switching /run/current-system
    const e = h.reopen();
    await e.recover();
    await e.idle();
    assert.equal(e.history.get(1)!.outcome, 'rolled-back');
    assert.deepEqual(h.sys.activations().slice(-2), [`${h.old} test`, `${h.old} test`], 'the previous system was activated again after the restart');
  });

  it('the activation never started (no record; died before it took effect): interrupted; twice makes the commit known-bad', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    h.sys.recorderFate.set(`${next} test`, 'never');
    await dieAt(h, 'systemd-run', COMMIT_A, next);
    let e = h.reopen();
    await e.recover();
    assert.equal(e.history.get(1)!.outcome, 'interrupted');
    assert.equal(e.history.get(1)!.error?.code, 'INTERRUPTED');
    assert.match(e.history.get(1)!.error!.message, /before the activation started; nothing was activated/);
    assert.equal(e.state.state.interruptions[COMMIT_A], 1);
    assert.equal(e.state.state.knownBad[COMMIT_A], undefined, 'once is not enough');
    assert.equal(h.sys.live(), h.old);
    await dieAt(h, 'systemd-run', COMMIT_A, next);
    e = h.reopen();
    await e.recover();
    assert.equal(e.history.get(2)!.outcome, 'interrupted');
    assert.match(e.state.state.knownBad[COMMIT_A]!.reason, /interrupted 2 times/);
    assert.throws(() => e.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher'), { code: 'KNOWN_BAD' });
    assert.deepEqual(e.historyPage({}).deployments.map((d) => d.outcome), ['interrupted', 'interrupted']);
  });

  it('switch mode, died after nix-env --set but before activation: profile and boot entry put back, interrupted', async () => {
    h = harness({ activation: 'switch' });
    const next = h.sys.makeSystem('next');
    h.sys.recorderFate.set(`${next} switch`, 'never');
    await dieAt(h, 'systemd-run', COMMIT_A, next);
    assert.equal(h.sys.profileTarget(), next, 'the profile had moved before the crash');
    const e = h.reopen();
    await e.recover();
    assert.equal(e.history.get(1)!.outcome, 'interrupted');
    assert.equal(h.sys.profileTarget(), h.old);
    assert.deepEqual(h.sys.activations().at(-1), `${h.old} boot (direct)`);
  });

  it('died while rolling back with the previous system live: rolled-back', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    h.sys.stcExit.set(`${next} test`, 2);
    // Die during the rollback's activation; the failed activation never repointed current-system.
    let n = 0;
    h.sys.hooks.set('systemd-run', () => (++n === 2 ? new Promise(() => {}) : {}));
    void h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher');
    while (n < 2) await new Promise((r) => setImmediate(r));
    assert.equal(h.lines().at(-1)!.phase, 'rolling-back');
    h.sys.hooks.delete('systemd-run');
    const e = h.reopen();
    await e.recover();
    assert.equal(e.history.get(1)!.outcome, 'rolled-back');
    assert.ok(e.state.state.knownBad[COMMIT_A]);
  });

  it('an unexpected error mid-deployment (history unwritable): fatal, and the next start resolves the record', async () => {
    h = harness();
    const next = h.sys.makeSystem('next');
    const path = join(h.sys.stateDir, 'history.jsonl');
    h.sys.hooks.set('git', () => {
      renameSync(path, `${path}.keep`);
      mkdirSync(path);
      return {};
    });
    await assert.rejects(h.executor.deploy({ commit: COMMIT_A, toplevel: next }, 'watcher'), { code: 'INTERNAL', message: /EISDIR/ });
    assert.equal(h.fatals.length, 1, 'main exits non-zero so systemd restarts it');
    assert.ok(h.log.names().includes('executor.fatal'));
    assert.throws(() => h.executor.deploy({ commit: COMMIT_B, toplevel: next }, 'watcher'), { code: 'BUSY' });
    h.sys.hooks.delete('git');
    rmdirSync(path);
    renameSync(`${path}.keep`, path);
    const e = h.reopen();
    await e.recover();
    assert.equal(e.history.get(1)!.outcome, 'succeeded');
  });

  it('a deploy during recovery is BUSY; status answers', async () => {
    h = harness();
    await dieAt(h, 'git', COMMIT_A, h.sys.makeSystem('next'));
    let release!: () => void;
    h.sys.hooks.set('git', () => new Promise((r) => (release = () => r({}))));
    const e = h.reopen();
    const recovering = e.recover();
    while (!release) await new Promise((r) => setImmediate(r));
    assert.throws(() => e.deploy({ commit: COMMIT_B, toplevel: h.sys.makeSystem('b') }, 'watcher'), { code: 'BUSY' });
    assert.equal(e.status().current?.id, 1);
    release();
    await recovering;
  });
});

describe('damaged files are reported, set aside, never silently reset', () => {
  it('a truncated last history line: reported, file kept aside, every complete record survives', async () => {
    h = harness();
    for (const [c, n] of [[COMMIT_A, 'a'], [COMMIT_B, 'b']] as const) {
      const r = await h.executor.deploy({ commit: c, toplevel: h.sys.makeSystem(n) }, 'watcher');
      await h.executor.idle();
      assert.equal(r.outcome, 'succeeded');
    }
    const path = join(h.sys.stateDir, 'history.jsonl');
    const good = readFileSync(path, 'utf8');
    appendFileSync(path, '{"id":3,"kind":"deploy","commit":"cc');
    const e = h.reopen();
    const corrupt = h.log.events.find((ev) => ev.name === 'state.corrupt');
    assert.ok(corrupt);
    assert.equal(corrupt.fields.file, path);
    assert.match(String(corrupt.fields.reason), /truncated/);
    const aside = readdirSync(h.sys.stateDir).filter((f) => f.startsWith('history.jsonl.corrupt-'));
    assert.equal(aside.length, 1);
    assert.equal(readFileSync(join(h.sys.stateDir, aside[0]!), 'utf8'), `${good}{"id":3,"kind":"deploy","commit":"cc`);
    assert.equal(readFileSync(path, 'utf8'), good);
    assert.equal(e.history.total, 2);
    assert.equal(e.status().deployed?.commit, COMMIT_B);
    // And it keeps working: the next id follows the last complete record.
    const r = await e.deploy({ commit: 'c'.repeat(40), toplevel: h.sys.makeSystem('c') }, 'watcher');
    assert.equal(r.id, 3);
  });

  it('a garbage line in the middle is dropped, the lines around it kept', async () => {
    h = harness();
    await h.executor.deploy({ commit: COMMIT_A, toplevel: h.sys.makeSystem('a') }, 'watcher');
    await h.executor.idle();
    const path = join(h.sys.stateDir, 'history.jsonl');
    const lines = readFileSync(path, 'utf8').split('\n');
    lines.splice(2, 0, '\u0000\u0000garbage');
    writeFileSync(path, lines.join('\n'));
    const e = h.reopen();
    assert.match(String(h.log.events.find((ev) => ev.name === 'state.corrupt')?.fields.reason), /line 3 is not JSON/);
    assert.equal(e.history.get(1)?.outcome, 'succeeded');
  });

  it('a corrupt state.json: set aside, rebuilt from history (failure memory, self-pause, next id)', async () => {
    h = harness();
    const bad = h.sys.makeSystem('bad');
    h.sys.stcExit.set(`${bad} test`, 2);
    h.sys.stcExit.set(`${h.old} test`, 2);
    await h.executor.deploy({ commit: COMMIT_A, toplevel: bad }, 'watcher');
    await h.executor.idle();
    const statePath = join(h.sys.stateDir, 'state.json');
    writeFileSync(statePath, '{"v":1,"paused":nu');
    const e = h.reopen();
    const corrupt = h.log.events.find((ev) => ev.name === 'state.corrupt');
    assert.equal(corrupt?.fields.file, statePath);
    assert.match(String(corrupt?.fields.reason), /not JSON/);
    assert.equal(readdirSync(h.sys.stateDir).filter((f) => f.startsWith('state.json.corrupt-')).length, 1);
    assert.ok(e.state.state.knownBad[COMMIT_A], 'failure memory rebuilt from outcomes');
    assert.equal(e.state.state.paused?.by, 'executor', 'a failed rollback still pauses');
    assert.equal(e.state.state.nextId, 2);
    assert.ok(JSON.parse(readFileSync(statePath, 'utf8')).knownBad[COMMIT_A], 'the rebuilt state is written back');
  });

  it('a missing state.json next to a history: reported and rebuilt, not started from nothing', async () => {
    h = harness();
    const bad = h.sys.makeSystem('bad');
    h.sys.stcExit.set(`${bad} test`, 2);
    await h.executor.deploy({ commit: COMMIT_A, toplevel: bad }, 'watcher');
    await h.executor.idle();
    rmSync(join(h.sys.stateDir, 'state.json'));
    const e = h.reopen();
    assert.match(String(h.log.events.find((ev) => ev.name === 'state.corrupt')?.fields.reason), /missing while history\.jsonl holds 1 deployments/);
    assert.ok(e.state.state.knownBad[COMMIT_A]);
    assert.equal(e.state.state.nextId, 2);
  });

  it('state and history files are 0600', async () => {
    h = harness();
    await h.executor.deploy({ commit: COMMIT_A, toplevel: h.sys.makeSystem('a') }, 'watcher');
    await h.executor.idle();
    const { statSync } = await import('node:fs');
    for (const f of ['state.json', 'history.jsonl']) assert.equal(statSync(join(h.sys.stateDir, f)).mode & 0o777, 0o600, f);
  });
});
