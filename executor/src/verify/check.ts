/**
 * Step 4, verification, as a list of checks behind one small interface. A check knows how to make
 * one attempt; `runCheck` retries it with doubling back-off (capped) until the shared deadline
 * (verify.timeoutSec after verification started), with a last attempt at the deadline, so a check
 * that recovers within verify.timeoutSec is never failed. One file per kind: git.ts, units.ts,
 * command.ts, http.ts, tcp.ts, unit.ts; index.ts builds the list and runs it.
 */
import type { CheckKind, CheckResult, Logger } from '@pullnix/shared';
import type { Clock } from '../pipeline/context.ts';

export const MAX_VERIFY_BACKOFF_MS = 15_000;

/** One attempt's answer. */
export type Attempt =
  | {
      ok: true;
      output?: string;
      units?: string[];
      preexisting?: string[];
      /** Passing so far, not yet final: ask again after this many ms. */
      settleMs?: number;
      /** With settleMs: if the deadline comes before it settles, the check fails with this (unset: it passes). */
      unsettled?: string;
    }
  | { ok: false; error: string; output?: string; units?: string[]; preexisting?: string[] };

export interface AttemptOptions {
  /** This attempt must be over by then (the check's own timeout, cut to the deadline). */
  timeoutMs: number;
  /** Aborted when verification as a whole is given up (shutdown). */
  signal: AbortSignal;
}

export interface Check {
  readonly name: string;
  readonly kind: CheckKind;
  /** What it checks, for messages: `git ls-remote <url>`, `GET <url>`, ... */
  readonly what: string;
  /** Longest single attempt (the check's timeoutSec). */
  readonly attemptTimeoutMs: number;
  /** The final error from the last attempt's; default `<what> failed N times within verify.timeoutSec=T; last: <error>`. */
  giveUp?(lastError: string, attempts: number, timeoutSec: number): string;
  attempt(options: AttemptOptions): Promise<Attempt>;
}

export interface RunCheckOptions {
  clock: Clock;
  log: Logger;
  /** Epoch ms after which no new attempt starts (the last one is made at it). */
  deadline: number;
  initialBackoffMs: number;
  timeoutSec: number;
  signal: AbortSignal;
}

/** Shortest time left an attempt is given, so an attempt at the deadline can still answer. */
const MIN_ATTEMPT_MS = 1000;

/** Retry one check until it passes or the deadline has passed. Never throws: a throwing attempt is a failed one. */
export async function runCheck(check: Check, o: RunCheckOptions): Promise<CheckResult> {
  const started = o.clock.now();
  let backoff = o.initialBackoffMs;
  let attempts = 0;
  for (;;) {
    attempts++;
    const timeoutMs = Math.min(check.attemptTimeoutMs, Math.max(o.deadline - o.clock.now(), MIN_ATTEMPT_MS));
    let a: Attempt;
    try {
      a = await check.attempt({ timeoutMs, signal: o.signal });
    } catch (error) {
      a = { ok: false, error: `the check could not run: ${(error as Error).message}` };
    }
    const left = o.deadline - o.clock.now();
    if (a.ok && a.settleMs !== undefined && a.settleMs > 0 && left <= 0 && a.unsettled !== undefined) {
      // Clean at the deadline, but not for long enough since it last failed: that is still a failure.
      return result(check, o, started, attempts, { ok: false, error: a.unsettled, ...(a.units ? { units: a.units } : {}), ...(a.preexisting ? { preexisting: a.preexisting } : {}) });
    }
    if (a.ok && (a.settleMs === undefined || a.settleMs <= 0 || left <= 0)) return result(check, o, started, attempts, a);
    if (a.ok) {
      // Passing, but not for long enough yet: look again soon (the settle window ends before the deadline).
      await o.clock.sleep(Math.max(1, Math.min(a.settleMs!, left)));
      continue;
    }
    const giveUp = left <= 0 || o.signal.aborted;
    // The last pause is cut to end at the deadline: a check that passes within the window is always asked once more.
    const pause = Math.min(backoff, left);
    o.log.event('verify.attempt_failed', { check: check.name, kind: check.kind, attempt: attempts, error: a.error, next_ms: giveUp ? null : pause });
    if (giveUp) {
      const times = attempts === 1 ? 'once' : `${attempts} times`;
      const error = check.giveUp ? check.giveUp(a.error, attempts, o.timeoutSec) : `${check.what} failed ${times} within verify.timeoutSec=${o.timeoutSec}; last: ${a.error}`;
      return result(check, o, started, attempts, { ...a, error });
    }
    await o.clock.sleep(pause);
    backoff = Math.min(backoff * 2, MAX_VERIFY_BACKOFF_MS);
  }
}

function result(check: Check, o: RunCheckOptions, started: number, attempts: number, a: Attempt): CheckResult {
  const r: CheckResult = {
    name: check.name,
    kind: check.kind,
    passed: a.ok,
    attempts,
    error: a.ok ? null : a.error,
    startedAt: new Date(started).toISOString(),
    durationMs: Math.max(0, o.clock.now() - started),
  };
  if (a.output !== undefined && a.output !== '') r.output = a.output;
  if (a.units !== undefined) r.units = a.units;
  if (a.preexisting !== undefined) r.preexisting = a.preexisting;
  const fields = { check: check.name, kind: check.kind, attempts, ms: r.durationMs };
  if (a.ok) o.log.event('check.passed', fields);
  else o.log.event('check.failed', { ...fields, error: r.error });
  return r;
}

/** A check that did not run because an earlier mandatory one failed. */
export function notRun(check: Pick<Check, 'name' | 'kind'>): CheckResult {
  return { name: check.name, kind: check.kind, passed: null, attempts: 0, error: null, startedAt: null, durationMs: 0 };
}

/** A signal that aborts after `ms` or with `signal`, whichever is first. */
export function attemptSignal(signal: AbortSignal, ms: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(ms)]);
}
