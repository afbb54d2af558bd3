/**
 * The verified system's own pullnix, asked whether it can start with its own configuration: an
 * existing `<toplevel>/etc/pullnix/config.json` that the new daemons reject would leave the machine
 * without its agent once committed (the executor exits 78 at every start, nothing rolls back).
 * So each daemon of the new package is run with `--check-config` before anything is committed;
 * a refusal is a failed verification, reported as the check `pullnix-config`.
 */
import { existsSync } from 'node:fs';
import { describeFailure, lastLines, type CheckResult, type Logger } from '@pullnix/shared';
import { checkConfig, daemonProgram, PULLNIX_DAEMONS } from '../commands/pullnix.ts';
import type { PipelineContext } from '../pipeline/context.ts';

export const OWN_CONFIG_CHECK = 'pullnix-config';

/** Where a system keeps its pullnix configuration (NixOS: environment.etc."pullnix/config.json"). */
export function systemConfigPath(toplevel: string): string {
  return `${toplevel}/etc/pullnix/config.json`;
}

/**
 * null: nothing to ask (the system has no pullnix configuration, or no pullnix daemons in its
 * sw/bin); else the verdict of every daemon it has.
 */
export async function checkOwnConfig(ctx: PipelineContext, toplevel: string, log: Logger): Promise<CheckResult | null> {
  const file = systemConfigPath(toplevel);
  if (!existsSync(file)) return null;
  const programs = PULLNIX_DAEMONS.map((daemon) => ({ daemon, program: daemonProgram(toplevel, daemon) })).filter((p) => existsSync(p.program));
  if (programs.length === 0) return null;
  const started = ctx.clock.now();
  const errors: string[] = [];
  const outputs: string[] = [];
  for (const { daemon, program } of programs) {
    const r = await checkConfig(ctx.runner, program, file, ctx.config.verify.attemptTimeoutSec * 1000);
    if (r.exitCode === 0) continue;
    // Without the journal priority prefix (`<3>`) the watcher gives its own lines.
    const said = lastLines(r.stderr.replace(/^<\d>/gm, ''), 10);
    errors.push(`${daemon} of the new system rejects its own configuration ${file}: ${r.exitCode === 78 && said ? said.replace(/\s*\n\s*/g, ' ') : describeFailure(r)}`);
    if (said) outputs.push(said);
  }
  const passed = errors.length === 0;
  const daemons = programs.map((p) => p.daemon);
  if (passed) log.event('verify.own_config_accepted', { file, daemons });
  else log.event('verify.own_config_rejected', { file, daemons, error: errors.join('; ') });
  return { name: OWN_CONFIG_CHECK, kind: 'command', passed, attempts: 1, error: passed ? null : errors.join('; '), ...(outputs.length > 0 ? { output: outputs.join('\n') } : {}), startedAt: new Date(started).toISOString(), durationMs: ctx.clock.now() - started };
}
