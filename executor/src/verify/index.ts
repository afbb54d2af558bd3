/**
 * Step 4: run the checks. git first and mandatory (if the machine cannot reach its repository,
 * nothing else matters and nothing else is run); then, all at once, each retried until the same
 * deadline (verify.timeoutSec after verification started): the newly-failed-units check (unless
 * verify.failedUnits.enable is false) and the declared checks, in the order of their names.
 * All must pass.
 *
 * The declared checks (and verify.failedUnits) are those of the system being verified, read from
 * its own `<toplevel>/etc/pullnix/config.json`: a commit that adds a service and its check is
 * checked at once, and one that removes both is not failed by the old check. git and the timing
 * (verify.timeoutSec, back-off) stay the running executor's. A system without a pullnix
 * configuration is verified with the running one's checks (logged). One whose configuration exists
 * but does not load fails, unless its own daemons accept it (a newer pullnix's keys the running
 * executor does not know: then the running one's checks, logged). Before all that, the new
 * system's daemons check their own configuration (own-config.ts): a refusal fails verification.
 */
import { readFileSync } from 'node:fs';
import { checkOwnConfig, OWN_CONFIG_CHECK, systemConfigPath } from './own-config.ts';
import { ConfigError, parseConfig, type CheckResult, type Config, type DeploymentRecord, type Logger } from '@pullnix/shared';
import type { PipelineContext } from '../pipeline/context.ts';
import { notRun, runCheck, type Check, type RunCheckOptions } from './check.ts';
import { commandCheck } from './command.ts';
import { gitCheck } from './git.ts';
import { httpCheck } from './http.ts';
import { tcpCheck } from './tcp.ts';
import { unitCheck } from './unit.ts';
import { unitsCheck, type UnitsSnapshot } from './units.ts';

export { verifyConnectivity } from './git.ts';
export type { Check, CheckResult };

export type Verification = { ok: true; checks: CheckResult[] } | { ok: false; checks: CheckResult[]; failed: CheckResult[]; reason: string };

/** Environment of command checks: what is being verified. */
export function deploymentEnv(record: DeploymentRecord): Record<string, string> {
  return {
    PULLNIX_DEPLOYMENT: String(record.id),
    PULLNIX_COMMIT: record.commit,
    PULLNIX_TOPLEVEL: record.toplevel,
    PULLNIX_PREVIOUS: record.previous.system ?? '',
  };
}

export { systemConfigPath };

export type ChecksConfig = Pick<Config, 'checks'> & { failedUnits: Config['verify']['failedUnits']; source: string };

/**
 * The checks to run for a system: its own configuration's; the running one's when it has none, or
 * when its own daemons accepted a file this executor cannot read (`vouched`); else `unusable`.
 */
export function checksConfigOf(ctx: PipelineContext, toplevel: string, log: Logger, vouched = false): ChecksConfig | { unusable: string } {
  const path = systemConfigPath(toplevel);
  const running = (why: string): ChecksConfig => {
    log.event('verify.own_config_unusable', { file: path, reason: why });
    return { checks: ctx.config.checks, failedUnits: ctx.config.verify.failedUnits, source: 'running configuration' };
  };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return running('no such file');
    return { unusable: `the new system's pullnix configuration ${path} cannot be read: ${code ?? (error as Error).message}` };
  }
  try {
    const own = parseConfig(text, path);
    return { checks: own.checks, failedUnits: own.verify.failedUnits, source: path };
  } catch (error) {
    const why = error instanceof ConfigError ? error.problems.join('; ') : (error as Error).message;
    if (vouched) return running(`${why} (accepted by the new system's own pullnix)`);
    return { unusable: `the new system's pullnix configuration ${path} is invalid, pullnix would not start with it: ${why}` };
  }
}

/** The checks after git, in the order they are reported. */
export function followingChecks(ctx: PipelineContext, record: DeploymentRecord, config: Pick<ChecksConfig, 'checks' | 'failedUnits'>, unitsBefore: UnitsSnapshot | null = null): Check[] {
  const list: Check[] = [];
  if (config.failedUnits.enable) list.push(unitsCheck(ctx, record.previous.failedUnits, config.failedUnits.settleSec, unitsBefore));
  const env = deploymentEnv(record);
  for (const name of Object.keys(config.checks).sort()) {
    const c = config.checks[name]!;
    switch (c.type) {
      case 'command':
        list.push(commandCheck(ctx, name, c, env));
        break;
      case 'http':
        list.push(httpCheck(name, c));
        break;
      case 'tcp':
        list.push(tcpCheck(name, c));
        break;
      case 'unit':
        list.push(unitCheck(ctx, name, c));
        break;
    }
  }
  return list;
}

export async function runChecks(ctx: PipelineContext, d: { record: DeploymentRecord; log: Logger; unitsBefore?: UnitsSnapshot | null }, signal: AbortSignal = new AbortController().signal): Promise<Verification> {
  const { verify } = ctx.config;
  const options: RunCheckOptions = { clock: ctx.clock, log: d.log, deadline: ctx.clock.now() + verify.timeoutSec * 1000, initialBackoffMs: verify.initialBackoffMs, timeoutSec: verify.timeoutSec, signal };
  const own = await checkOwnConfig(ctx, d.record.toplevel, d.log);
  if (own && !own.passed) return { ok: false, checks: [own], failed: [own], reason: `check ${own.name} failed: ${own.error ?? 'failed'}` };
  const checksConfig = checksConfigOf(ctx, d.record.toplevel, d.log, own?.passed === true);
  if ('unusable' in checksConfig) {
    const unusable: CheckResult = { name: OWN_CONFIG_CHECK, kind: 'command', passed: false, attempts: 1, error: checksConfig.unusable, startedAt: new Date(ctx.clock.now()).toISOString(), durationMs: 0 };
    return { ok: false, checks: [unusable], failed: [unusable], reason: `check ${OWN_CONFIG_CHECK} failed: ${checksConfig.unusable}` };
  }
  const rest = followingChecks(ctx, d.record, checksConfig, d.unitsBefore ?? null);
  const git = await runCheck(gitCheck(ctx), options);
  const checks = [...(own ? [own] : []), ...(git.passed ? [git, ...(await Promise.all(rest.map((c) => runCheck(c, options))))] : [git, ...rest.map(notRun)])];
  const failed = checks.filter((c) => c.passed === false);
  if (failed.length === 0) return { ok: true, checks };
  return { ok: false, checks, failed, reason: failed.map((c) => `check ${c.name} failed: ${c.error ?? 'failed'}`).join('; ') };
}
