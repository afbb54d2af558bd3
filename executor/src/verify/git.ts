/**
 * The git connectivity check, always first and mandatory: `git ls-remote` of the configured
 * remote with the watcher's credentials. A machine that cannot reach its repository cannot be
 * fixed by the next commit, so nothing else is worth checking when this fails.
 */
import { describeFailure, type CheckResult } from '@pullnix/shared';
import { lsRemote } from '../commands/git.ts';
import type { PipelineContext } from '../pipeline/context.ts';
import { runCheck, type Check } from './check.ts';

export function gitCheck(ctx: PipelineContext): Check {
  const { config } = ctx;
  return {
    name: 'git',
    kind: 'git',
    what: `git ls-remote ${config.repository.url}`,
    attemptTimeoutMs: config.verify.attemptTimeoutSec * 1000,
    async attempt({ timeoutMs, signal }) {
      const r = await lsRemote(ctx.runner, config, timeoutMs, signal);
      return r.exitCode === 0 ? { ok: true } : { ok: false, error: describeFailure(r) };
    },
  };
}

/**
 * The git check alone, retried until verify.timeoutSec from now (what a rollback needs to know:
 * can the machine still reach its repository?). `log` carries the deployment's fields.
 */
export function verifyConnectivity(ctx: PipelineContext, d: { log: PipelineContext['log'] }, signal: AbortSignal = new AbortController().signal): Promise<CheckResult> {
  const { verify } = ctx.config;
  return runCheck(gitCheck(ctx), { clock: ctx.clock, log: d.log, deadline: ctx.clock.now() + verify.timeoutSec * 1000, initialBackoffMs: verify.initialBackoffMs, timeoutSec: verify.timeoutSec, signal });
}
