/**
 * Hooks: hooks.preDeploy (run by the watcher, after the build and before the deploy request: a
 * non-zero exit or a timeout means "not now", asked again at the next poll), hooks.onSuccess and
 * hooks.onFailure (run by the executor after the outcome is recorded: notify only, a failure is
 * logged and changes nothing). Each runs through systemd-run as its user (default a dynamic
 * unprivileged one), argv only, with the PULLNIX_* environment (docs/hooks.md); a watcher with a
 * user of its own runs preDeploy directly, as that user.
 */
import { runAs } from './commands/run-as.ts';
import type { HookConfig, HookName } from './config/config.ts';
import type { Logger } from './log/logger.ts';
import { describeFailure, lastLines, type Runner } from './run.ts';

export interface HookContext {
  deployment: number | null;
  commit: string;
  /** The outcome (onSuccess/onFailure); null for preDeploy. */
  outcome: string | null;
  toplevel: string;
  /** The system the deployment started from (preDeploy: the live one). */
  previous: string | null;
  error: string | null;
}

export function hookEnvironment(c: HookContext): Record<string, string> {
  return {
    PULLNIX_DEPLOYMENT: c.deployment === null ? '' : String(c.deployment),
    PULLNIX_COMMIT: c.commit,
    PULLNIX_OUTCOME: c.outcome ?? '',
    PULLNIX_TOPLEVEL: c.toplevel,
    PULLNIX_PREVIOUS: c.previous ?? '',
    // One line: an environment variable is no place for a multi-line log.
    PULLNIX_ERROR: (c.error ?? '').replace(/\s*\n\s*/g, ' | ').slice(0, 2000),
  };
}

export interface HookResult {
  ok: boolean;
  /** Why it failed; null when it exited 0. */
  error: string | null;
  output: string;
}

/**
 * `direct`: run the hook as a child of this process, as its own user, instead of through
 * systemd-run. For a watcher that runs as an unprivileged user of its own (docs/decisions.md D20):
 * it may not start units, and is itself the unprivileged, sandboxed user a hook should run as.
 */
export async function runHook(runner: Runner, log: Logger, name: HookName, hook: HookConfig, context: HookContext, signal?: AbortSignal, options: { direct?: boolean } = {}): Promise<HookResult> {
  const direct = options.direct ?? false;
  log.event('hook.started', { hook: name, argv: hook.argv.join(' '), user: hook.user ?? (direct ? 'self' : 'dynamic') });
  const r = direct
    ? await runner(hook.argv, {
        env: { PATH: process.env.PATH ?? '/run/current-system/sw/bin', ...hookEnvironment(context) },
        extendEnv: false,
        timeoutMs: hook.timeoutSec * 1000,
        killAfterMs: 2000,
        ...(signal ? { signal } : {}),
      })
    : await runAs(runner, { unitPrefix: `pullnix-hook-${name}`, user: hook.user, argv: hook.argv, env: hookEnvironment(context), timeoutMs: hook.timeoutSec * 1000, ...(signal ? { signal } : {}) });
  const output = lastLines(`${r.stdout}\n${r.stderr}`, 10);
  if (r.exitCode === 0) {
    log.event('hook.succeeded', { hook: name, ms: r.durationMs });
    return { ok: true, error: null, output };
  }
  const error = r.timedOut ? `did not finish within hooks.${name}.timeoutSec=${hook.timeoutSec}` : describeFailure(r);
  // preDeploy's "not now" is an answer, not a failure: the watcher logs deploy.postponed.
  if (name !== 'preDeploy') log.event('hook.failed', { hook: name, error, output: output || undefined });
  return { ok: false, error, output };
}
