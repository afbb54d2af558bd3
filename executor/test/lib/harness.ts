/** An in-process Executor over a FakeSystem, with a fake clock: a whole pipeline in milliseconds. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeploymentRecord } from '@pullnix/shared';
import { Executor } from '../../src/executor.ts';
import { FakeClock, FakeSystem, memoryLogger } from './fake-system.ts';

export interface Harness {
  sys: FakeSystem;
  clock: FakeClock;
  log: ReturnType<typeof memoryLogger>;
  executor: Executor;
  old: string;
  selfUpgrades: number;
  fatals: unknown[];
  /** Every line of history.jsonl, parsed. */
  lines(): DeploymentRecord[];
  reopen(): Executor;
}

/** The hand-over guard's command line in the fake (guard.ts is tested on its own): the deployment id and NRestarts follow. */
export const GUARD = ['/nix/store/old-pullnix/bin/pullnix-executor', 'guard-handover', '--config', '/nix/store/old-etc/pullnix/config.json', '--deployment'];

export function harness(configOverrides: Record<string, unknown> = {}, setup?: (sys: FakeSystem) => void): Harness {
  const sys = new FakeSystem();
  const clock = new FakeClock();
  const log = memoryLogger();
  const old = sys.makeSystem('old-system');
  sys.boot(old);
  setup?.(sys);
  const h: Harness = {
    sys,
    clock,
    log,
    old,
    selfUpgrades: 0,
    fatals: [],
    executor: undefined as unknown as Executor,
    lines: () =>
      readFileSync(join(sys.stateDir, 'history.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as DeploymentRecord),
    reopen: () => {
      const e = new Executor({ config: sys.config(configOverrides), runner: sys.runner, log, clock, guard: (id, restarts) => [...GUARD, String(id), '--restarts', String(restarts)], onSelfUpgrade: () => h.selfUpgrades++, onFatal: (e) => h.fatals.push(e) });
      e.open();
      h.executor = e;
      return e;
    },
  };
  h.reopen();
  return h;
}
