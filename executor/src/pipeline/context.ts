/** What every pipeline step needs, as one options object (no positional plumbing). */
import { readFileSync, realpathSync } from 'node:fs';
import type { Config, Logger, Runner } from '@pullnix/shared';
import type { HistoryStore } from '../store/history.ts';
import type { StateStore } from '../store/state.ts';
import type { DaemonsProbe } from './handover.ts';

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
  /** The command line of this executor's `record-activation` (activation-record.ts). */
  recorder: readonly string[];
  /** The pullnix daemons, for the check that the new ones come up before a commit (handover.ts); absent in the hand-over's guard. */
  daemons?: DaemonsProbe;
}

/** This very program's `record-activation`: the same node and entry point the executor runs from. */
export function selfRecorder(): string[] {
  return [process.execPath, process.argv[1] ?? 'pullnix-executor', 'record-activation'];
}

/** The kernel's boot id (changes with every boot); null when it cannot be read. */
export function currentBootId(config: Config): string | null {
  try {
    return readFileSync(config.paths.bootId, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/** The resolved target of paths.currentSystem (`readlink -f /run/current-system`); null if absent. */
export function liveSystem(config: Config): string | null {
  try {
    return realpathSync(config.paths.currentSystem);
  } catch {
    return null;
  }
}
