/**
 * Crash recovery (DESIGN.md "Crash safety"): on start, a deployment recorded as started and not
 * finished is resolved by looking at what is live (`readlink -f` of paths.currentSystem):
 *
 * - first, the activation's transient unit (recorded in the history) is waited for: it outlives
 *   the executor, and the live system means nothing until it has finished.
 * - it was rolling back: the rollback is run again (the decision to roll back was already made,
 *   and a live previous system does not prove its activation exited 0).
 * - its toplevel is live (it was activated): verify again, then commit or roll back.
 * - anything else (it died before or while activating; the previous system is still live):
 *   interrupted. A commit interrupted MAX_INTERRUPTIONS times in a row counts as failed.
 *
 * Records are only appended: the unfinished record's earlier snapshots stay in the history.
 */
import type { DeploymentRecord } from '@pullnix/shared';
import { profileGeneration } from '../commands/nix-env.ts';
import { isErrorCode } from '@pullnix/shared';
import { liveSystem, type PipelineContext } from './context.ts';
import { Deployment, failure, restoreBootDefault, rollBack, verifyAndCommit, waitForUnit } from './deployment.ts';

export async function recoverDeployment(ctx: PipelineContext, record: DeploymentRecord): Promise<DeploymentRecord> {
  const d = Deployment.resume(ctx, record);
  // Killing the executor does not kill an activation: it runs on in its transient unit. Judge
  // the live system only once that unit (the newest one recorded) has finished.
  const unit = [...record.phases].reverse().find((p) => p.unit !== undefined)?.unit;
  if (unit !== undefined) {
    d.log.event('deploy.recovering', { phase: record.phase, action: 'wait', unit });
    await waitForUnit(ctx, unit);
  }
  const live = liveSystem(ctx.config);
  const profileMoved = profileGeneration(ctx.config.paths.systemProfile) !== record.previous.generation;
  const fields = { phase: record.phase, live, toplevel: record.toplevel, previous: record.previous.system };
  if (record.phase === 'rolling-back') {
    d.log.event('deploy.recovering', { ...fields, action: 'rollback' });
    // The rolling-back mark keeps the cause's text, not its code; the code is the phase that failed.
    // The rollback is always run again: /run/current-system pointing at the previous system does
    // not prove its activation finished with exit 0, and re-activating it is harmless.
    const cause = record.phases.at(-1)?.detail ?? 'rolled back';
    const code = isErrorCode(record.error?.code) ? record.error.code : causeCode(record);
    return rollBack(ctx, d, code, `${cause} (resumed after the executor stopped during the rollback)`, { profileMoved, activated: true });
  }
  if (live !== null && live === record.toplevel && record.phase !== 'accepted') {
    d.log.event('deploy.recovering', { ...fields, action: 'verify' });
    return verifyAndCommit(ctx, d, { profileMoved });
  }
  const reason = `the executor stopped during ${record.phase}; on restart the live system was ${live ?? 'unknown'}, not this deployment's`;
  if (profileMoved) {
    // Only switch mode moves the profile before activation: put the boot default back.
    const why = await restoreBootDefault(ctx, d);
    if (why !== null) return d.finish('rollback-failed', failure('ROLLBACK_FAILED', `${reason}; restoring the boot default failed: ${why}`));
  }
  return d.finish('interrupted', failure('INTERRUPTED', reason));
}

/** The phase before rolling-back tells what failed. */
function causeCode(record: DeploymentRecord): 'ACTIVATION_FAILED' | 'VERIFY_FAILED' | 'COMMIT_FAILED' {
  const before = record.phases.filter((p) => p.phase !== 'rolling-back').at(-1)?.phase;
  return before === 'verifying' ? 'VERIFY_FAILED' : before === 'committing' ? 'COMMIT_FAILED' : 'ACTIVATION_FAILED';
}
