/** The history index: folding by id, paging, and answering without reading the file again. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { DeploymentRecord } from '@pullnix/shared';
import { HistoryStore, parseRecord } from '../src/store/history.ts';
import { emptyState, MAX_KNOWN_BAD, rebuildState, rememberFailure, StateStore } from '../src/store/state.ts';
import { harness } from './lib/harness.ts';

function record(id: number, outcome: DeploymentRecord['outcome'], commit = id.toString(16).padStart(40, '0')): DeploymentRecord {
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, id)).toISOString();
  return {
    id,
    kind: 'deploy',
    commit,
    toplevel: `/nix/store/${'a'.repeat(32)}-s${id}`,
    activation: 'test',
    requestedBy: 'watcher',
    previous: { system: null, generation: null },
    phase: outcome === null ? 'verifying' : 'finished',
    phases: [{ phase: 'accepted', at }],
    outcome,
    error: null,
    activationExit: 0,
    generation: outcome === 'succeeded' ? id : null,
    startedAt: at,
    finishedAt: outcome === null ? null : at,
  };
}

describe('history store', () => {
  it('folds 10,000 deployments by id and pages them from memory, without the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-history-'));
    try {
      const path = join(dir, 'history.jsonl');
      const lines: string[] = [];
      for (let id = 1; id <= 10_000; id++) {
        lines.push(JSON.stringify(record(id, null)));
        lines.push(JSON.stringify(record(id, id % 10 === 0 ? 'rolled-back' : 'succeeded')));
      }
      writeFileSync(path, `${lines.join('\n')}\n`);
      const store = new HistoryStore(path);
      assert.equal(store.load(), null);
      // Gone from disk: what follows can only come from the index.
      renameSync(path, `${path}.away`);
      assert.equal(store.total, 10_000);
      assert.deepEqual(store.page(3).map((r) => [r.id, r.outcome]), [[10_000, 'rolled-back'], [9999, 'succeeded'], [9998, 'succeeded']]);
      assert.deepEqual(store.page(2, 5001).map((r) => r.id), [5000, 4999]);
      assert.deepEqual(store.page(5, 3).map((r) => r.id), [2, 1]);
      assert.equal(store.page(20, 1).length, 0);
      assert.equal(store.lastSucceeded()?.id, 9999);
      assert.equal(store.lastFailure()?.id, 10_000);
      assert.equal(store.succeededBefore(9999)?.id, 9998);
      assert.equal(store.unfinished().length, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names what is wrong with a line that is not a record', () => {
    assert.match(parseRecord('{"id":1}') as string, /bad or missing: kind, commit, toplevel/);
    assert.match(parseRecord('[1]') as string, /not a JSON object/);
    assert.match(parseRecord('{"id":') as string, /not JSON/);
    assert.equal(typeof parseRecord(JSON.stringify(record(1, null))), 'object');
  });
});

describe('failure memory bound', () => {
  it('keeps the newest MAX_KNOWN_BAD failed commits, forgetting the oldest first', () => {
    const s = emptyState();
    for (let id = 1; id <= MAX_KNOWN_BAD + 5; id++) rememberFailure(s, id.toString(16).padStart(40, '0'), { deploymentId: id, reason: 'rolled-back', at: 'now' });
    const ids = Object.values(s.knownBad).map((k) => k.deploymentId).sort((a, b) => a - b);
    assert.equal(ids.length, MAX_KNOWN_BAD);
    assert.equal(ids[0], 6);
    assert.equal(ids.at(-1), MAX_KNOWN_BAD + 5);
  });
});

describe('state rebuilt from history', () => {
  it('failure memory from outcomes, cleared by a later success; interruptions; self-pause', () => {
    const A = 'a'.repeat(40);
    const B = 'b'.repeat(40);
    const C = 'c'.repeat(40);
    const s = rebuildState(
      [record(1, 'rolled-back', A), record(2, 'succeeded', A), record(3, 'interrupted', B), record(4, 'interrupted', B), record(5, 'rollback-failed', C)],
      '2026-01-01T00:00:00.000Z',
    );
    assert.equal(s.knownBad[A], undefined);
    assert.match(s.knownBad[B]!.reason, /interrupted 2 times/);
    assert.equal(s.knownBad[C]!.deploymentId, 5);
    assert.equal(s.paused?.by, 'executor');
    assert.equal(s.nextId, 6);
    assert.deepEqual(rebuildState([], 'now'), emptyState());
  });
});

/**
 * A real, tiny tmpfs (64 KiB): the kernel's own short writes and ENOSPC, not a simulation.
 * Mounting needs root; CI runs the suite as root.
 */
function tinyTmpfs(t: TestContext, dir = mkdtempSync(join(tmpdir(), 'pullnix-full-'))): { dir: string; fill(leaveFree?: number): void; free(): void } | null {
  if (process.getuid?.() !== 0) {
    t.skip('needs root to mount a tmpfs (mount -t tmpfs -o size=64k); CI runs as root');
    return null;
  }
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0755', 'tmpfs', dir]);
  t.after(() => {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const filler = join(dir, 'filler');
  return {
    dir,
    /** Take every free block, then give `leaveFree` bytes back (whole pages on tmpfs). */
    fill(leaveFree = 0) {
      try {
        appendFileSync(filler, Buffer.alloc(128 * 1024, 0x78));
        assert.fail('a 64 KiB tmpfs took 128 KiB');
      } catch (error) {
        assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
      }
      if (leaveFree > 0) truncateSync(filler, Math.max(0, statSync(filler).size - leaveFree));
    },
    free() {
      rmSync(filler, { force: true });
    },
  };
}

describe('a full disk (real tmpfs)', () => {
  it('state.json: a write that does not fit fails naming the file, and the previous good file stays', (t) => {
    const fs = tinyTmpfs(t);
    if (!fs) return;
    const store = new StateStore(join(fs.dir, 'state.json'));
    store.update((s) => {
      s.paused = { since: '2026-01-01T00:00:00.000Z', reason: 'maintenance window', by: 'operator:alice' };
      for (let id = 1; id <= 40; id++) rememberFailure(s, id.toString(16).padStart(40, '0'), { deploymentId: id, reason: 'rolled-back', at: 'then' });
    });
    const good = readFileSync(store.path, 'utf8');
    // 12 KiB free, a 25 KiB+ state to write: write(2) writes part of it, then ENOSPC.
    fs.fill(12 * 1024);
    assert.throws(
      () =>
        store.update((s) => {
          for (let id = 41; id <= 200; id++) rememberFailure(s, id.toString(16).padStart(40, '0'), { deploymentId: id, reason: 'rolled-back', at: 'then' });
        }),
      (error: NodeJS.ErrnoException) => {
        assert.equal(error.code, 'ENOSPC');
        assert.ok(error.message.includes(store.path), error.message);
        return true;
      },
    );
    assert.equal(readFileSync(store.path, 'utf8'), good, 'the previous good state.json is in place, whole');
    assert.equal(store.state.paused?.by, 'operator:alice', 'the in-memory state did not move either');
    assert.deepEqual(readdirSync(fs.dir).sort(), ['filler', 'state.json'], 'no temporary file is left behind');
    // Room again: the same change goes through.
    fs.free();
    store.update((s) => (s.nextId = 7));
    const reloaded = new StateStore(store.path);
    assert.equal(reloaded.load(), null);
    assert.equal(reloaded.state.paused?.reason, 'maintenance window');
  });

  it('history.jsonl: a failed append is cut back; no half line, no record glued to it, none lost', (t) => {
    const fs = tinyTmpfs(t);
    if (!fs) return;
    const path = join(fs.dir, 'history.jsonl');
    const store = new HistoryStore(path);
    for (let id = 1; id <= 3; id++) store.append(record(id, 'succeeded'));
    const before = readFileSync(path, 'utf8');
    fs.fill();
    // Bigger than the slack in the file's last page: part of it is written, then ENOSPC.
    const big = { ...record(4, 'rolled-back'), error: { code: 'VERIFY_FAILED' as const, message: 'x'.repeat(4000) } };
    assert.throws(() => store.append(big), (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'ENOSPC');
      assert.match(error.message, /history\.jsonl.*no space left on device.*cut off again/);
      return true;
    });
    assert.equal(readFileSync(path, 'utf8'), before, 'truncated back to the last complete line');
    assert.equal(store.get(4), null, 'the index only holds what is on disk');
    fs.free();
    store.append(big);
    store.append(record(5, 'succeeded'));
    const reloaded = new HistoryStore(path);
    assert.equal(reloaded.load(), null, 'the file is clean: nothing to report or set aside');
    assert.deepEqual(reloaded.all().map((r) => [r.id, r.outcome]), [[1, 'succeeded'], [2, 'succeeded'], [3, 'succeeded'], [4, 'rolled-back'], [5, 'succeeded']]);
  });

  it('the executor: history or state unwritable mid-deployment is fatal, logged naming the file; the next start resolves it', async (t) => {
    const h = harness();
    // The harness's state directory, moved onto a tiny tmpfs.
    const saved = mkdtempSync(join(tmpdir(), 'pullnix-saved-'));
    cpSync(h.sys.stateDir, saved, { recursive: true });
    const fs = tinyTmpfs(t, h.sys.stateDir);
    // After hooks run in order: the tmpfs is unmounted before the fake machine is removed.
    t.after(() => h.sys.cleanup());
    if (!fs) return;
    cpSync(saved, h.sys.stateDir, { recursive: true });
    rmSync(saved, { recursive: true, force: true });
    h.reopen();
    const history = join(h.sys.stateDir, 'history.jsonl');
    // The disk fills while the new system is being verified. Which write fails first (the history's
    // next line or state.json) depends on the slack in the history's last page, so deployments go
    // on until both have failed; the sizes are the same on every run (fake clock, fixed names).
    const failedFiles = new Set<string>();
    for (let i = 1; i <= 12 && failedFiles.size < 2; i++) {
      h.sys.hooks.set('git', () => {
        fs.fill();
        return {};
      });
      const commit = i.toString(16).padStart(40, '0');
      await assert.rejects(h.executor.deploy({ commit, toplevel: h.sys.makeSystem(`sys${i.toString().padStart(2, '0')}`) }, 'watcher'), { code: 'INTERNAL', message: /ENOSPC/ });
      assert.equal(h.fatals.length, i, 'main exits non-zero, systemd restarts it');
      const fatal = h.log.events.filter((e) => e.name === 'executor.fatal').at(-1);
      const named = new RegExp(`^cannot write ${h.sys.stateDir}/(history\\.jsonl|state\\.json): ENOSPC`).exec(String(fatal?.fields.error));
      assert.ok(named, String(fatal?.fields.error));
      failedFiles.add(named[1]!);
      // Every line on disk is a whole record.
      const text = readFileSync(history, 'utf8');
      assert.ok(text.endsWith('\n'));
      for (const line of text.trimEnd().split('\n')) assert.equal(typeof parseRecord(line), 'object', line);
      // Room again; the restarted executor resolves the deployment from what was recorded.
      h.sys.hooks.delete('git');
      fs.free();
      const e = h.reopen();
      await e.recover();
      assert.equal(h.log.events.filter((ev) => ev.name === 'state.corrupt').length, 0);
      assert.equal(e.history.get(i)?.outcome, 'succeeded');
      assert.equal(e.state.state.current, null);
      assert.equal(e.state.state.nextId, i + 1);
    }
    assert.deepEqual([...failedFiles].sort(), ['history.jsonl', 'state.json']);
  });
});

describe('history loader: half lines', () => {
  it('a half line at the end: the next append starts a line of its own; load reports the half line, keeps the rest', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-history-'));
    try {
      const path = join(dir, 'history.jsonl');
      const store = new HistoryStore(path);
      store.append(record(1, 'succeeded'));
      // What a crash in the middle of an append leaves.
      appendFileSync(path, JSON.stringify(record(2, null)).slice(0, 50));
      store.append(record(2, 'succeeded'));
      const lines = readFileSync(path, 'utf8').split('\n');
      assert.equal(lines[2], JSON.stringify(record(2, 'succeeded')), 'not glued to the half line');
      const reloaded = new HistoryStore(path);
      const report = reloaded.load();
      assert.match(report?.reason ?? '', /line 2 is not JSON/);
      assert.deepEqual(reloaded.all().map((r) => r.id), [1, 2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a record glued to a half line (written before appends were cut back): the complete record is kept', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-history-'));
    try {
      const path = join(dir, 'history.jsonl');
      const half = JSON.stringify(record(2, null)).slice(0, 80);
      writeFileSync(path, `${JSON.stringify(record(1, 'succeeded'))}\n${half}${JSON.stringify(record(2, 'rolled-back'))}\n${JSON.stringify(record(3, 'succeeded'))}\n`);
      const store = new HistoryStore(path);
      const report = store.load();
      assert.match(report?.reason ?? '', /line 2 is half a record with a complete one glued to it/);
      assert.deepEqual(store.all().map((r) => [r.id, r.outcome]), [[1, 'succeeded'], [2, 'rolled-back'], [3, 'succeeded']]);
      assert.equal(readFileSync(join(dir, report!.setAside), 'utf8').includes(half), true, 'the damaged file is kept aside');
      assert.equal(new HistoryStore(path).load(), null, 'the clean copy loads without a report');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
