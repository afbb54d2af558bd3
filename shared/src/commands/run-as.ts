/**
 * `systemd-run --wait --pipe --collect`: run an operator's command (a check, a hook) as a
 * transient service of its own, as a named user or, by default, a dynamic unprivileged user
 * (DynamicUser=yes), never as the daemon's root. argv only, no shell. systemd itself stops it at
 * the timeout (RuntimeMaxSec), so nothing outlives the attempt even when the client is killed.
 * Shared by the executor (command checks, onSuccess/onFailure) and the watcher (preDeploy).
 */
import { randomBytes } from 'node:crypto';
import type { Runner, RunResult } from '../run.ts';

export interface RunAsOptions {
  /** Unit name prefix, e.g. `pullnix-check-nginx`; a random suffix is added. */
  unitPrefix: string;
  /** null: DynamicUser=yes. */
  user: string | null;
  argv: readonly string[];
  env?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Unit names allow [A-Za-z0-9:_.\-@]; anything else in a check name becomes '_'. */
export function unitSafe(text: string): string {
  return text.replace(/[^A-Za-z0-9:_.-]/g, '_').slice(0, 100);
}

export function runAsArgv(o: { unit: string; user: string | null; argv: readonly string[]; env?: Record<string, string>; timeoutSec: number }): string[] {
  const argv = [
    'systemd-run',
    `--unit=${o.unit}`,
    '--service-type=exec',
    '--wait',
    '--pipe',
    '--collect',
    '--quiet',
    '-p',
    o.user === null ? 'DynamicUser=yes' : `User=${o.user}`,
    '-p',
    `RuntimeMaxSec=${o.timeoutSec}`,
  ];
  for (const [k, v] of Object.entries(o.env ?? {})) argv.push(`--setenv=${k}=${v}`);
  argv.push('--', ...o.argv);
  return argv;
}

export function runAs(runner: Runner, o: RunAsOptions): Promise<RunResult> {
  const unit = `${unitSafe(o.unitPrefix)}-${randomBytes(3).toString('hex')}.service`;
  const timeoutSec = Math.max(1, Math.ceil(o.timeoutMs / 1000));
  // The client waits a little longer than systemd's own limit, so the unit's end is what it sees.
  return runner(runAsArgv({ unit, user: o.user, argv: o.argv, ...(o.env ? { env: o.env } : {}), timeoutSec }), {
    timeoutMs: timeoutSec * 1000 + 5000,
    killAfterMs: 2000,
    ...(o.signal ? { signal: o.signal } : {}),
  });
}
