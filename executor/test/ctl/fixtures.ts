/** Values shaped like the executor's answers, for render and schema tests. */
import type { DeploymentRecord, StatusResult } from '@pullnix/shared';
import type { CtlSettings } from '../../src/ctl/context.ts';

export const NOW = Date.parse('2026-03-01T12:00:00Z');
export const ago = (seconds: number) => new Date(NOW - seconds * 1000).toISOString();

export const DEPLOYED = '3333333333333333333333333333333333333333';
export const HEAD = 'feedfacefeedfacefeedfacefeedfacefeedface';
export const BAD = 'deadbeefdeadbeefdeadbeefdeadbeefdeadbeef';
export const SYSTEM = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web1-24.11';

export const SETTINGS: CtlSettings = {
  socketPath: '/run/pullnix/executor.sock',
  stateDir: '/var/lib/pullnix',
  group: 'pullnix',
  units: { executor: 'pullnix-executor.service', watcher: 'pullnix-watcher.service' },
  note: null,
};

export function deployment(overrides: Partial<DeploymentRecord> = {}): DeploymentRecord {
  return {
    id: 7,
    kind: 'deploy',
    commit: HEAD,
    toplevel: SYSTEM,
    activation: 'test',
    requestedBy: 'watcher',
    previous: { system: SYSTEM, generation: 41 },
    phase: 'verifying',
    phases: [
      { phase: 'accepted', at: ago(90) },
      { phase: 'activating', at: ago(80), detail: 'pullnix-activate-7' },
      { phase: 'verifying', at: ago(20) },
    ],
    outcome: null,
    error: null,
    activationExit: 0,
    generation: null,
    startedAt: ago(90),
    finishedAt: null,
    ...overrides,
  };
}

/** Everything populated: a deployment running, paused, a failure, a watcher with an error. */
export function busyStatus(): StatusResult {
  return {
    version: '0.1.0',
    executor: { pid: 812, startedAt: ago(3 * 3600 + 120), busy: true },
    paused: { since: ago(300), reason: 'disk replacement', by: 'alice' },
    deployed: { deploymentId: 6, commit: DEPLOYED, toplevel: SYSTEM, generation: 42, at: ago(7200) },
    liveSystem: SYSTEM,
    current: deployment(),
    lastFailure: { deploymentId: 5, commit: BAD, outcome: 'rolled-back', reason: 'verification failed: git ls-remote: Could not resolve host\nsecond line', at: ago(86400 * 3) },
    knownBad: [BAD],
    watcher: {
      connected: true,
      report: {
        state: 'deploying',
        pid: 900,
        version: '0.1.0',
        remoteHead: { commit: HEAD, subject: 'Enable nginx', time: ago(600) },
        deployedCommit: { commit: DEPLOYED, subject: 'Pin nixpkgs', time: ago(86400) },
        lastPollAt: ago(30),
        nextPollAt: new Date(NOW + 270_000).toISOString(),
        lastError: { kind: 'build', message: 'error: builder for foo failed', at: ago(4000), commit: BAD },
        failedBuilds: [BAD],
      },
      reportedAt: ago(30),
    },
    drift: true,
  };
}

export function quietStatus(): StatusResult {
  return {
    version: '0.1.0',
    executor: { pid: 812, startedAt: ago(50), busy: false },
    paused: null,
    deployed: null,
    liveSystem: null,
    current: null,
    lastFailure: null,
    knownBad: [],
    watcher: { connected: false, report: null, reportedAt: null },
    drift: null,
  };
}
