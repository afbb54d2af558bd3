/**
 * A `command` check: argv (no shell) run through `systemd-run --wait --pipe --collect` as the
 * named user, by default a dynamic unprivileged one (DynamicUser=yes), stopped by systemd at its
 * timeout; it passes on exit 0. The last lines of its output are kept in the result.
 */
import { lastLines, type CheckConfig, type RunResult } from '@pullnix/shared';
import { runAs } from '../commands/systemd-run.ts';
import type { PipelineContext } from '../pipeline/context.ts';
import type { Check } from './check.ts';

export const OUTPUT_LINES = 10;

export function commandCheck(ctx: PipelineContext, name: string, check: CheckConfig, env: Record<string, string>): Check {
  return {
    name,
    kind: 'command',
    what: `command ${JSON.stringify(check.argv)}`,
    attemptTimeoutMs: check.timeoutSec * 1000,
    async attempt({ timeoutMs, signal }) {
      const r = await runAs(ctx.runner, { unitPrefix: `pullnix-check-${name}`, user: check.user, argv: check.argv, env, timeoutMs, signal });
      const output = lastLines(`${r.stdout}\n${r.stderr}`, OUTPUT_LINES);
      return r.exitCode === 0 ? { ok: true, output } : { ok: false, error: describeExit(r, timeoutMs), output };
    },
  };
}

function describeExit(r: RunResult, timeoutMs: number): string {
  if (r.spawnError) return `systemd-run could not be started: ${r.spawnError}`;
  if (r.timedOut || r.aborted) return `did not finish within ${Math.round(timeoutMs / 1000)} s`;
  const last = lastLines(r.stderr, 1) || lastLines(r.stdout, 1);
  return `exited ${r.exitCode ?? r.signal ?? '?'}${last ? `: ${last}` : ''}`;
}
