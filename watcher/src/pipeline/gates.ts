/**
 * The gates stage: between the realised system and the deploy request, an ordered list of gates,
 * each answering pass, refuse or wait. They run in order; the first that does not pass ends the
 * cycle and the gates after it do not run. A new gate is one file implementing `Gate`, appended
 * to the list in `createGates`.
 */
import { join } from 'node:path';
import type { WatcherReport, WatcherState } from '@pullnix/shared';
import type { Ending, PollOutcome, WatcherContext } from './context.ts';
import { VulnerabilityGate } from './gate-vulnerabilities.ts';

/** The system a gate decides on. */
export interface GateCandidate {
  commit: string;
  toplevel: string;
  /** The commit the executor reports as deployed (null: none yet). */
  deployed: string | null;
}

export interface GateContext {
  signal: AbortSignal;
}

export type GateVerdict =
  | { verdict: 'pass' }
  /** The commit's fault: handled, remembered as a failure of kind `gate.name`, not tried again until the branch moves or an operator retries. */
  | { verdict: 'refuse'; reason: string; detail?: string }
  /** Not now, nobody's fault: looked at again at the next poll ('next-poll') or after the back-off of a failure ('backoff'). */
  | { verdict: 'wait'; reason: string; retry: 'next-poll' | 'backoff'; /** A next-poll wait whose reason status shows (lastError) though it is no failure. */ shown?: boolean }
  | { verdict: 'stopped' };

export interface Gate {
  /** lastError.kind and the failure kind of its refusals (e.g. `vulnerabilities`). */
  readonly name: string;
  /** Whether it runs at all (a gate switched off in the configuration is skipped). */
  readonly enabled: boolean;
  /** The watcher's state while it runs (reported to the executor); none: unchanged. */
  readonly state?: WatcherState;
  /** The poll outcomes of its refusals and waits; default 'gate-refused' / 'gate-waiting'. */
  readonly outcomes?: { refuse: 'vulnerable' | 'gate-refused'; wait: PollOutcome };
  evaluate(candidate: GateCandidate, context: GateContext): Promise<GateVerdict>;
  /** What it adds to the watcher's report (status), e.g. the vulnerability gate's last decision. */
  report?(): Partial<WatcherReport>;
}

/** The gates, in the order they run. A new gate is appended here. */
export function createGates(context: WatcherContext): Gate[] {
  const { config } = context;
  return [
    new VulnerabilityGate({
      settings: config.gates.vulnerabilities,
      runner: context.runner,
      logger: context.logger,
      cacheDir: join(config.watcher.stateDir, 'vulnix'),
      currentSystem: config.paths.currentSystem,
      memory: context.memory,
      save: () => context.save(),
      now: () => context.clock.now(),
    }),
  ];
}

export interface GateRun {
  /** Called before each enabled gate runs. */
  onGate?: (gate: Gate) => void;
}

/** Run the gates in order: null when all passed, else the first gate that did not and its verdict. */
export async function runGates(gates: readonly Gate[], candidate: GateCandidate, context: GateContext, run: GateRun = {}): Promise<{ gate: Gate; verdict: Exclude<GateVerdict, { verdict: 'pass' }> } | null> {
  for (const gate of gates) {
    if (!gate.enabled) continue;
    run.onGate?.(gate);
    const verdict = await gate.evaluate(candidate, context);
    if (verdict.verdict !== 'pass') return { gate, verdict };
  }
  return null;
}

/** How a cycle ends when a gate did not pass. */
export function gateEnding(gate: Gate, verdict: Exclude<GateVerdict, { verdict: 'pass' }>): Ending {
  const outcomes = gate.outcomes ?? { refuse: 'gate-refused', wait: 'gate-waiting' };
  switch (verdict.verdict) {
    case 'stopped':
      return { outcome: 'stopped', failures: 'keep' };
    case 'wait':
      if (verdict.retry === 'backoff') return { outcome: outcomes.wait, failures: 'count', error: { kind: gate.name, message: verdict.reason } };
      return { outcome: outcomes.wait, failures: 'reset', ...(verdict.shown ? { error: { kind: gate.name, message: verdict.reason } } : {}) };
    case 'refuse':
      return {
        outcome: outcomes.refuse,
        failures: 'reset',
        error: { kind: gate.name, message: verdict.reason },
        handled: { result: outcomes.refuse, detail: verdict.reason },
        failure: { error: verdict.reason, logTail: verdict.detail ?? '', kind: gate.name },
      };
  }
}
