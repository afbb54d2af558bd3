/** The history index: folding by id, paging, and answering without reading the file again. */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DeploymentRecord } from '@pullnix/shared';
import { HistoryStore, parseRecord } from '../src/store/history.ts';
import { emptyState, MAX_KNOWN_BAD, rebuildState, rememberFailure } from '../src/store/state.ts';

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
