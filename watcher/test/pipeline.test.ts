/**
 * The watcher's pipeline (watcher/src/pipeline/): the gate list (order, short-circuit, disabled
 * gates skipped) and the deployment-step observer (the steps of a commit, in order, through a
 * whole cycle with an in-process git and executor).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, parseConfig, type DeploymentRecord, type RunOptions, type RunResult, type StatusResult } from '@pullnix/shared';
import { runGates, Watcher, type ExecutorClient, type Gate, type GateVerdict, type GitOps, type StepEvent } from '../src/index.ts';

const C1 = '1'.repeat(40);
const C2 = '2'.repeat(40);
const C3 = '3'.repeat(40);
const STORE = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-h';
const NEVER = new AbortController().signal;

/** A gate that records when it ran and answers `verdict`. */
function gate(name: string, ran: string[], verdict: GateVerdict, enabled = true): Gate {
  return {
    name,
    enabled,
    evaluate: async () => {
      ran.push(name);
      return verdict;
    },
  };
}

describe('the gate list', () => {
  const candidate = { commit: C2, toplevel: STORE, deployed: C1 };

  it('runs every enabled gate in order when all pass, and skips a disabled one', async () => {
    const ran: string[] = [];
    const gates = [gate('a', ran, { verdict: 'pass' }), gate('off', ran, { verdict: 'refuse', reason: 'x' }, false), gate('b', ran, { verdict: 'pass' }), gate('c', ran, { verdict: 'pass' })];
    const seen: string[] = [];
    assert.equal(await runGates(gates, candidate, { signal: NEVER }, { onGate: (g) => seen.push(g.name) }), null);
    assert.deepEqual(ran, ['a', 'b', 'c']);
    assert.deepEqual(seen, ['a', 'b', 'c']);
  });

  it('stops at the first gate that does not pass: the gates after it do not run', async () => {
    for (const verdict of [{ verdict: 'refuse', reason: 'no' }, { verdict: 'wait', reason: 'later', retry: 'next-poll' }, { verdict: 'stopped' }] as const) {
      const ran: string[] = [];
      const gates = [gate('a', ran, { verdict: 'pass' }), gate('b', ran, verdict), gate('c', ran, { verdict: 'pass' })];
      const stopped = await runGates(gates, candidate, { signal: NEVER });
      assert.equal(stopped?.gate.name, 'b', verdict.verdict);
      assert.deepEqual(stopped?.verdict, verdict);
      assert.deepEqual(ran, ['a', 'b'], verdict.verdict);
    }
  });
});

/** git as the cycle sees it: the remote head is `heads[i]` at the i-th ls-remote; every commit descends from the deployed one. */
function fakeGit(heads: string[]): GitOps {
  let polls = 0;
  return {
    lsRemote: async () => heads[Math.min(polls++, heads.length - 1)]!,
    fetch: async () => undefined,
    hasCommit: async () => true,
    isAncestor: async () => true,
    checkout: async () => undefined,
    describe: async () => null,
    discard: async () => undefined,
  };
}

/** The executor: C1 deployed, not paused; every deploy succeeds. */
function fakeExecutor(): ExecutorClient {
  const now = new Date().toISOString();
  const status: StatusResult = {
    version: 'test',
    executor: { pid: 1, startedAt: now, busy: false },
    paused: null,
    deployed: { deploymentId: 1, commit: C1, toplevel: STORE, generation: 1, at: now },
    liveSystem: null,
    current: null,
    lastFailure: null,
    knownBad: [],
    watcher: { connected: true, report: null, reportedAt: null },
    drift: null,
  };
  return {
    connected: true,
    start: async () => undefined,
    status: async () => status,
    deploy: async ({ commit, toplevel }) => ({ deployment: { id: 2, commit, toplevel, outcome: 'succeeded', phase: 'finished', error: null, generation: 2 } as DeploymentRecord }),
    report: async () => undefined,
    onPush: () => () => undefined,
    onConnected: () => () => undefined,
  };
}

/** A watcher whose build (nix) is a runner that makes the out-link, with `gates` as its gate list; its steps are collected. */
function watcherWith(heads: string[], gates: Gate[]): { watcher: Watcher; steps: StepEvent[] } {
  const stateDir = mkdtempSync(join(tmpdir(), 'pullnix-pipeline-'));
  const config = parseConfig(JSON.stringify({ repository: { url: '/r' }, build: { mode: 'flake', host: 'h' }, stateDir, socketPath: join(stateDir, 'unused.sock') }));
  const runner = async (argv: readonly string[], _options: RunOptions): Promise<RunResult> => {
    symlinkSync(STORE, argv[argv.indexOf('--out-link') + 1]!);
    return { argv, exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, aborted: false, durationMs: 1, spawnError: null };
  };
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
  const watcher = new Watcher({ config, runner, logger: createLogger({ level: 'debug', stream: sink }), executor: fakeExecutor(), git: fakeGit(heads), gates: () => gates });
  const steps: StepEvent[] = [];
  watcher.onStep((e) => steps.push(e));
  return { watcher, steps };
}

const brief = (steps: StepEvent[]) => steps.map((s) => `${s.commit.slice(0, 1)} ${s.step}${s.outcome ? ` (${s.outcome})` : ''}`);

describe('the deployment-step observer', () => {
  it('receives a deployed commit\'s steps in order, the gate named, the toplevel once realised', async () => {
    const ran: string[] = [];
    const { watcher, steps } = watcherWith([C2], [gate('first', ran, { verdict: 'pass' })]);
    assert.equal((await watcher.pollOnce()).outcome, 'deployed');
    assert.deepEqual(brief(steps), ['2 fetching', '2 building', '2 gating', '2 deploying', '2 succeeded (deployed)']);
    assert.equal(steps[2]?.detail, 'first');
    assert.deepEqual(
      steps.map((s) => s.toplevel),
      [null, null, STORE, STORE, STORE],
    );
  });

  it('a refusing gate: refused with its reason, remembered as a failure of the gate\'s kind, nothing requested', async () => {
    const ran: string[] = [];
    const { watcher, steps } = watcherWith([C2], [gate('halt', ran, { verdict: 'refuse', reason: 'halted by the fleet' }), gate('after', ran, { verdict: 'pass' })]);
    assert.equal((await watcher.pollOnce()).outcome, 'gate-refused');
    assert.deepEqual(brief(steps), ['2 fetching', '2 building', '2 gating', '2 refused (gate-refused)']);
    assert.equal(steps.at(-1)?.detail, 'halted by the fleet');
    assert.deepEqual(ran, ['halt']);
    assert.deepEqual(watcher.remembered.failures.map((f) => [f.commit, f.kind]), [[C2, 'halt']]);
    assert.equal(watcher.report().lastError?.kind, 'halt');
  });

  it('a waiting commit is superseded when the branch moves on before it reached an end', async () => {
    const { watcher, steps } = watcherWith([C2, C3], [{ name: 'phase', enabled: true, evaluate: async ({ commit }) => (commit === C2 ? { verdict: 'wait', reason: 'not my turn', retry: 'next-poll' } : { verdict: 'pass' }) }]);
    assert.equal((await watcher.pollOnce()).outcome, 'gate-waiting');
    assert.equal((await watcher.pollOnce()).outcome, 'deployed');
    assert.deepEqual(brief(steps), ['2 fetching', '2 building', '2 gating', '2 waiting (gate-waiting)', '2 superseded', '3 fetching', '3 building', '3 gating', '3 deploying', '3 succeeded (deployed)']);
    assert.equal(watcher.report().lastError, null, 'a wait for the next poll is no error');
  });
});
