/**
 * Time, randomness and timers behind one interface, so tests can drive the poll loop without
 * waiting for real intervals.
 */
export interface Clock {
  now(): number;
  /** Uniform in [0, 1). */
  random(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  random: () => Math.random(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Resolves after `ms`, or at once when the signal aborts (never rejects). */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clock.clearTimer(handle);
      resolve();
    };
    const handle = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The poll loop's sleep, which a `sync` push or a fresh executor connection cuts short.
 * A wake() that arrives while nobody sleeps (a poll is running) is kept, so the next sleep
 * returns at once: a sync during a poll still causes a poll after it.
 */
export class Alarm {
  private pending = false;
  private waiter: (() => void) | null = null;
  private readonly clock: Clock;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** 'woken' when wake() ended the sleep, 'elapsed' when the time ran out or the signal aborted. */
  sleep(ms: number, signal: AbortSignal): Promise<'woken' | 'elapsed'> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve('woken');
    }
    return new Promise((resolve) => {
      const done = (how: 'woken' | 'elapsed') => {
        this.clock.clearTimer(handle);
        signal.removeEventListener('abort', onAbort);
        this.waiter = null;
        resolve(how);
      };
      const onAbort = () => done('elapsed');
      const handle = this.clock.setTimer(() => done('elapsed'), ms);
      this.waiter = () => done('woken');
      if (signal.aborted) return done('elapsed');
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  wake(): void {
    if (this.waiter) this.waiter();
    else this.pending = true;
  }
}
