import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { existsSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, parseConfig, type RunOptions, type RunResult } from '@pullnix/shared';
import { Watcher, type ExecutorClient, type GitOps } from '../src/index.ts';
import { emptyMemory, parseMemory } from '../src/memory.ts';
import { PhasedGate } from '../src/pipeline/gate-phased.ts';
import { allowedShare, phasedDecision, phasePosition, sightingFor } from '../src/rings/phased.ts';

const C = 'a'.repeat(40);
const D = 'b'.repeat(40);
const phases = [
  { afterSec: 0, share: 10 },
  { afterSec: 7200, share: 50 },
  { afterSec: 21600, share: 100 },
];

describe('phased start', () => {
  it('a host has a stable place per commit, spread evenly over the ring', () => {
    assert.equal(phasePosition('m1', C), phasePosition('m1\n', C), 'the machine-id file ends with a newline');
    assert.notEqual(phasePosition('m1', C), phasePosition('m1', D));
    const positions = Array.from({ length: 2000 }, (_, i) => phasePosition(`machine-${i}`, C));
    assert.ok(positions.every((p) => p >= 0 && p < 100));
    const under10 = positions.filter((p) => p < 10).length;
    assert.ok(under10 > 120 && under10 < 280, `about 10 % of 2000 under 10 %, got ${under10}`);
  });

  it('the share is the last phase begun; none before the first; all without phases', () => {
    assert.equal(allowedShare([], 0), 100);
    assert.equal(allowedShare(phases, 0), 10);
    assert.equal(allowedShare(phases, 7199), 10);
    assert.equal(allowedShare(phases, 7200), 50);
    assert.equal(allowedShare(phases, 1e9), 100);
    assert.equal(allowedShare([{ afterSec: 600, share: 100 }], 10), 0);
  });

  it('a host waits until the share covers it, and says so', () => {
    // Find a machine at about 37 % for C.
    const id = Array.from({ length: 5000 }, (_, i) => `m-${i}`).find((m) => Math.floor(phasePosition(m, C)) === 37)!;
    const t0 = Date.parse('2026-12-07T00:00:00Z');
    const sighting = { commit: C, firstSeenAt: new Date(t0).toISOString() };
    const waiting = phasedDecision({ ring: 'prod', phases, machineId: id, sighting, now: t0 + 60_000 });
    assert.equal(waiting.allowed, false);
    assert.equal(waiting.message, 'phased: waiting, 10 % of ring prod allowed, this host at 37 %, its turn at 2026-12-07T02:00:00.000Z');
    assert.equal(waiting.allowedAt, t0 + 7200_000);
    const allowed = phasedDecision({ ring: 'prod', phases, machineId: id, sighting, now: t0 + 7200_000 });
    assert.equal(allowed.allowed, true);
    assert.equal(allowed.message, 'phased: 50 % of ring prod allowed, this host at 37 %');
    // A clock set back: no time elapsed, not negative.
    assert.equal(phasedDecision({ ring: 'prod', phases, machineId: id, sighting, now: t0 - 1e9 }).share, 10);
  });

  it('the first sighting is kept for the same commit and restarts with a new one', () => {
    const first = sightingFor(null, C, 1000);
    assert.equal(sightingFor(first, C, 999_999), first);
    assert.deepEqual(sightingFor(first, D, 5000), { commit: D, firstSeenAt: new Date(5000).toISOString() });
  });

  it('the sighting survives in watcher.json, and a malformed one is refused', () => {
    const base = { v: 1, lastHandled: null, failures: [], commits: {} };
    const m = parseMemory(JSON.stringify({ ...base, phased: { commit: C, firstSeenAt: '2026-12-07T00:00:00.000Z' } }));
    assert.deepEqual(m.phased, { commit: C, firstSeenAt: '2026-12-07T00:00:00.000Z' });
    assert.throws(() => parseMemory(JSON.stringify({ ...base, phased: { commit: C, firstSeenAt: 'yesterday' } })), /phased is not/);
  });
});

describe('the phased-start gate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pullnix-phased-'));
  const machineIdFile = join(dir, 'machine-id');
  // A machine at 37 % for C (found among generated ids, as a fleet would have them).
  const id = Array.from({ length: 5000 }, (_, i) => `m-${i}`).find((m) => Math.floor(phasePosition(m, C)) === 37)!;
  writeFileSync(machineIdFile, `${id}\n`);
  const ring = { name: 'prod', branch: 'rings/prod', phases };
  const candidate = { commit: C, toplevel: '/nix/store/x', deployed: D };

  it('waits for its turn, says so, keeps the first sighting across a restart, then passes', async () => {
    const memory = emptyMemory();
    let saves = 0;
    let now = Date.parse('2026-12-07T00:00:00Z');
    const logs: string[] = [];
    const logger = createLogger({ level: 'info', stream: new Writable({ write: (c: Buffer, _e, done) => (logs.push(c.toString()), done()) }) });
    const gate = () => new PhasedGate({ ring, logger, memory, save: () => saves++, now: () => now, machineIdFile });
    const first = gate();
    assert.equal(first.enabled, true);
    assert.deepEqual(await first.evaluate(candidate), { verdict: 'wait', reason: 'phased: waiting, 10 % of ring prod allowed, this host at 37 %, its turn at 2026-12-07T02:00:00.000Z', retry: 'next-poll' });
    assert.deepEqual(first.report(), { phased: { commit: C, allowed: false, message: 'phased: waiting, 10 % of ring prod allowed, this host at 37 %, its turn at 2026-12-07T02:00:00.000Z' } });
    assert.equal(saves, 1);
    now += 3600_000;
    await first.evaluate(candidate);
    assert.equal(saves, 1, 'the sighting is saved once');
    assert.equal(logs.filter((l) => l.includes('phased.waiting')).length, 1, 'logged once per step of the share');
    // A restarted watcher (same watcher.json): the clock did not restart.
    const restarted = gate();
    now += 3600_000;
    assert.deepEqual(await restarted.evaluate(candidate), { verdict: 'pass' });
    assert.match(String(restarted.report().phased?.message), /^phased: 50 % of ring prod allowed, this host at 37 %$/);
    assert.ok(logs.some((l) => l.startsWith('<6>phased.allowed')));
    // A new commit starts its own clock.
    assert.equal((await restarted.evaluate({ ...candidate, commit: D })).verdict === 'pass', phasePosition(id, D) < 10);
    assert.equal(memory.phased?.commit, D);
  });

  it('is off without phases or without a ring; an unreadable machine id waits with a back-off', async () => {
    const base = { logger: createLogger({ level: 'error' }), memory: emptyMemory(), save: () => {}, now: () => 0 };
    assert.equal(new PhasedGate({ ...base, ring: { ...ring, phases: [] } }).enabled, false);
    assert.equal(new PhasedGate({ ...base, ring: { name: null, branch: null, phases: [] } }).enabled, false);
    const v = await new PhasedGate({ ...base, ring, machineIdFile: join(dir, 'absent') }).evaluate(candidate);
    assert.equal(v.verdict, 'wait');
    assert.match((v as { reason: string }).reason, /^phased: cannot read the machine id .*absent: ENOENT/);
  });
});

describe('the phased start in the watcher (the default gate list)', () => {
  it('a ring host with phases builds the head, then waits at the phased gate, and its report says why', { skip: existsSync('/etc/machine-id') ? undefined : 'no /etc/machine-id here' }, async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'pullnix-phased-watcher-'));
    const config = parseConfig(
      JSON.stringify({ repository: { url: '/r' }, build: { mode: 'flake', host: 'h' }, ring: { name: 'prod', phases: [{ afterSec: 0, share: 0 }, { afterSec: 3600, share: 100 }] }, stateDir, socketPath: join(stateDir, 'unused.sock') }),
    );
    const STORE = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-h';
    const runner = async (argv: readonly string[], _options: RunOptions): Promise<RunResult> => {
      symlinkSync(STORE, argv[argv.indexOf('--out-link') + 1]!);
      return { argv, exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, aborted: false, durationMs: 1, spawnError: null };
    };
    let deploys = 0;
    const now = new Date().toISOString();
    const executor: ExecutorClient = {
      connected: true,
      start: async () => undefined,
      status: async () => ({ version: 't', executor: { pid: 1, startedAt: now, busy: false }, paused: null, deployed: { deploymentId: 1, commit: D, toplevel: STORE, generation: 1, at: now }, liveSystem: null, current: null, lastFailure: null, knownBad: [], watcher: { connected: true, report: null, reportedAt: null }, drift: null }),
      deploy: async () => {
        deploys += 1;
        throw new Error('must not be asked');
      },
      report: async () => undefined,
      onPush: () => () => undefined,
      onConnected: () => () => undefined,
    };
    const git: GitOps = { lsRemote: async () => C, fetch: async () => undefined, hasCommit: async () => true, isAncestor: async () => true, checkout: async () => undefined, describe: async () => null, discard: async () => undefined };
    const watcher = new Watcher({ config, runner, logger: createLogger({ level: 'error' }), executor, git });
    assert.equal(config.repository.branch, 'rings/prod');
    assert.equal((await watcher.pollOnce()).outcome, 'gate-waiting');
    assert.equal(deploys, 0);
    assert.match(watcher.report().phased?.message ?? '', /^phased: waiting, 0 % of ring prod allowed, this host at \d+ %, its turn at /);
  });
});
