/**
 * The chaos campaign's invariants of reboot deployments (test/chaos/invariants.ts rebootChecks),
 * judged on crafted histories: each finding is raised by the history that has it, and a history
 * that went as designed passes. No machine needed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeploymentRecord } from '@pullnix/shared';
import { rebootChecks, type RebootFacts } from '../chaos/invariants.ts';

const sys = (label: string) => `/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-bed-${label}`;
const INSTALLED = sys('s0c1-install');
const GOOD = new Set(['good', 'reboot', 'install']);

function record(id: number, label: string, phases: string[], outcome: DeploymentRecord['outcome'], reboot: DeploymentRecord['reboot'] = undefined): DeploymentRecord {
  return {
    id,
    commit: `c${id}`.padEnd(40, '0'),
    toplevel: sys(label),
    phase: outcome === null ? (phases.at(-1) as DeploymentRecord['phase']) : 'finished',
    outcome,
    phases: [...phases, ...(outcome === null ? [] : ['finished'])].map((phase) => ({ phase, at: '2026-12-07T00:00:00Z' })),
    ...(reboot ? { reboot } : {}),
  } as unknown as DeploymentRecord;
}

const trial = { needed: true, reasons: ['kernel'], mode: 'window', fromBootId: 'b1', trialBootId: 'b2' } as DeploymentRecord['reboot'];
const okReboot = () => record(2, 's1c1-reboot', ['accepted', 'awaiting-boot', 'awaiting-boot', 'verifying', 'committing'], 'succeeded', trial);
const failedReboot = () => record(3, 's2c1-rebootfail', ['accepted', 'awaiting-boot', 'verifying', 'fallback-reboot'], 'rolled-back', { ...trial!, fallbackFromBootId: 'b2' });

function facts(over: Partial<RebootFacts> = {}): RebootFacts {
  return {
    bootedEntries: [INSTALLED, sys('s1c1-reboot'), sys('s2c1-rebootfail'), sys('s1c1-reboot')],
    rebootsTotal: 3,
    booted: sys('s1c1-reboot'),
    isGood: (p) => p === INSTALLED || GOOD.has(/-([a-z]+)$/.exec(p)?.[1] ?? ''),
    installed: INSTALLED,
    step: null,
    ...over,
  };
}

const bad = (checks: { ok: boolean; n: number; text: string }[]) => checks.filter((c) => !c.ok).map((c) => `${c.n}: ${c.text}`);

test('a history that went as designed passes: one trial boot verified and committed, one trial left by its fallback reboot', () => {
  assert.deepEqual(bad(rebootChecks([okReboot(), failedReboot()], facts())), []);
  assert.deepEqual(bad(rebootChecks([okReboot()], facts({ bootedEntries: [INSTALLED, sys('s1c1-reboot')], rebootsTotal: 1, step: { kinds: ['reboot'], head: okReboot().commit, idBefore: 1, reboots: 1 } }))), []);
  assert.deepEqual(bad(rebootChecks([okReboot(), failedReboot()], facts({ step: { kinds: ['rebootfail'], head: failedReboot().commit, idBefore: 2, reboots: 2 } }))), []);
});

test('a failing system booted twice, or a reboot nobody asked for, breaks invariant 1', () => {
  const twice = rebootChecks([okReboot(), failedReboot()], facts({ bootedEntries: [INSTALLED, sys('s1c1-reboot'), sys('s2c1-rebootfail'), sys('s2c1-rebootfail')] }));
  assert.match(bad(twice).join('\n'), /^1: a failing system booted more than once: .*s2c1-rebootfail 2×/);
  assert.match(bad(rebootChecks([okReboot(), failedReboot()], facts({ rebootsTotal: 4 }))).join('\n'), /^1: the machine rebooted itself 4 times, pullnix asked for at most 3 \(2 trial, 1 fallback\)/);
});

test('a reboot deployment committed without its trial boot, activated live, or falling back twice breaks invariant 2', () => {
  const noTrial = record(2, 's1c1-reboot', ['accepted', 'awaiting-boot', 'verifying', 'committing'], 'succeeded', { ...trial!, trialBootId: 'b1' });
  assert.match(bad(rebootChecks([noTrial], facts())).join('\n'), /#2 succeeded without a trial boot of its own/);
  const live = record(2, 's1c1-reboot', ['accepted', 'awaiting-boot', 'activating', 'verifying', 'committing'], 'succeeded', trial);
  assert.match(bad(rebootChecks([live], facts())).join('\n'), /#2 was activated live/);
  const notVerified = record(2, 's1c1-reboot', ['accepted', 'verifying', 'awaiting-boot', 'committing'], 'succeeded', trial);
  assert.match(bad(rebootChecks([notVerified], facts())).join('\n'), /#2 succeeded without verifying and committing after its trial boot/);
  const twice = record(3, 's2c1-rebootfail', ['accepted', 'awaiting-boot', 'verifying', 'fallback-reboot', 'fallback-reboot'], 'rolled-back', trial);
  assert.match(bad(rebootChecks([twice], facts({ rebootsTotal: 1 }))).join('\n'), /#3: 2 fallback-reboot marks/);
  const fellSucceeded = record(3, 's2c1-rebootfail', ['accepted', 'awaiting-boot', 'verifying', 'fallback-reboot'], 'interrupted', trial);
  assert.match(bad(rebootChecks([fellSucceeded], facts({ rebootsTotal: 1 }))).join('\n'), /#3: fell back, ended interrupted/);
});

test('an unfaulted reboot step that did not go as designed breaks invariant 5', () => {
  // rebootfail without its fallback reboot (e.g. re-activated live): 1 reboot, the trial system still booted.
  const live = record(3, 's2c1-rebootfail', ['accepted', 'awaiting-boot', 'verifying', 'rolling-back'], 'rolled-back', trial);
  const r = bad(rebootChecks([okReboot(), live], facts({ rebootsTotal: 2, booted: sys('s2c1-rebootfail'), step: { kinds: ['rebootfail'], head: live.commit, idBefore: 2, reboots: 1 } })));
  assert.equal(r.length, 1, r.join('\n'));
  assert.match(r[0]!, /^5: rebootfail without a fault: .*1 reboot\(s\) \(want rolled-back, 2, one of them the fallback\), fallback not marked, booted .*s2c1-rebootfail \(want .*s1c1-reboot\)/);
  // reboot that rebooted twice.
  assert.match(bad(rebootChecks([okReboot()], facts({ rebootsTotal: 2, step: { kinds: ['reboot'], head: okReboot().commit, idBefore: 1, reboots: 2 } }))).join('\n'), /^5: reboot without a fault: .*2 reboot\(s\) \(want succeeded, 1\)/m);
});
