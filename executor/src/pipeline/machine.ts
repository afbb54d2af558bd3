/**
 * The machine's failures are not the commit's (issue 21, part 3; docs/decisions.md D22), in the
 * executor too: a nix command (nix-env) that fails for the machine's reasons (the nix-daemon
 * restarting: `cannot connect to socket … Connection refused`, `unexpected end-of-file`; a full
 * disk; a timeout; shared/src/fault.ts has Nix's own words) is run again after a pause, as long as
 * the machine's fault lasts and at most MACHINE_RETRY_MS, before its failure counts. A failure
 * that is the command's own (anything else) counts at once.
 */
import { describeFailure, faultOf, type Logger, type RunResult } from '@pullnix/shared';
import type { Clock } from './context.ts';

/** Pauses before each new attempt: about half a minute in all, longer than a nix-daemon restart. */
export const MACHINE_RETRY_MS = [1000, 2000, 4000, 8000, 15_000] as const;

/** `run` until it succeeds, fails for its own reasons, or the machine's fault outlasts the pauses. */
export async function retryMachineFaults(clock: Clock, log: Logger, what: string, run: () => Promise<RunResult>): Promise<RunResult> {
  for (let attempt = 0; ; attempt++) {
    const r = await run();
    if (r.exitCode === 0) return r;
    const { fault, why } = faultOf(r, 'its timeout');
    const pause = MACHINE_RETRY_MS[attempt];
    if (fault !== 'machine' || pause === undefined) return r;
    log.event('deploy.machine_fault', { command: what, attempt: attempt + 1, why, retry_ms: pause, error: describeFailure(r) });
    await clock.sleep(pause);
  }
}
