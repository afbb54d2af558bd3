/** What every pipeline step needs, as one options object (no positional plumbing). */
import { realpathSync } from 'node:fs';
import type { Config, Logger, Runner } from '@pullnix/shared';
import type { HistoryStore } from '../store/history.ts';
import type { StateStore } from '../store/state.ts';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface PipelineContext {
  config: Config;
  runner: Runner;
  log: Logger;
  history: HistoryStore;
  state: StateStore;
  clock: Clock;
}

/** The resolved target of paths.currentSystem (`readlink -f /run/current-system`); null if absent. */
export function liveSystem(config: Config): string | null {
  try {
    return realpathSync(config.paths.currentSystem);
  } catch {
    return null;
  }
}
