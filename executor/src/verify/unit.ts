/**
 * A `unit` check: the named unit is active. A oneshot must also have run and succeeded: it is
 * active with RemainAfterExit=yes, or inactive after a run, with Result=success either way (a
 * oneshot still running is not done yet, and is asked again).
 */
import type { CheckConfig } from '@pullnix/shared';
import { unitProperties } from '../commands/systemctl.ts';
import type { PipelineContext } from '../pipeline/context.ts';
import type { Attempt, Check } from './check.ts';

const PROPERTIES = ['LoadState', 'ActiveState', 'SubState', 'Result', 'Type', 'RemainAfterExit', 'ExecMainExitTimestampMonotonic'] as const;

export function unitCheck(ctx: PipelineContext, name: string, check: CheckConfig): Check {
  const unit = check.unit!;
  return {
    name,
    kind: 'unit',
    what: `unit ${unit}`,
    attemptTimeoutMs: check.timeoutSec * 1000,
    async attempt({ timeoutMs }) {
      const p = await unitProperties(ctx.runner, unit, PROPERTIES, timeoutMs);
      if (p === null) return { ok: false, error: `systemctl show ${unit} did not answer` };
      return judgeUnit(unit, p);
    },
  };
}

export function judgeUnit(unit: string, p: Record<string, string>): Attempt {
  const state = `${p.ActiveState ?? '?'}/${p.SubState ?? '?'}${p.Result && p.Result !== 'success' ? `, result ${p.Result}` : ''}`;
  if (p.LoadState !== 'loaded') return { ok: false, error: `${unit} is not loaded (LoadState=${p.LoadState ?? '?'})` };
  if (p.Type === 'oneshot') {
    if (p.Result !== 'success') return { ok: false, error: `oneshot ${unit} did not succeed (${state})` };
    if (p.ActiveState === 'active') return { ok: true };
    const ran = p.ExecMainExitTimestampMonotonic !== undefined && p.ExecMainExitTimestampMonotonic !== '0';
    if (p.ActiveState === 'inactive' && ran) return { ok: true };
    return { ok: false, error: `oneshot ${unit} has not run to completion (${state})` };
  }
  return p.ActiveState === 'active' ? { ok: true } : { ok: false, error: `${unit} is not active (${state})` };
}
