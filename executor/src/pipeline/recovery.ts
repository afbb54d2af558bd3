/**
 * Crash recovery (DESIGN.md "Crash safety"): on start, a deployment recorded as started and not
 * finished is resolved. The live system (`/run/current-system`) proves nothing by itself: NixOS's
 * activation script repoints it at the new system even when the activation fails (exit 2, 4), so
 * the decision rests on the activation's recorded exit status (activation-record.ts) and on
 * whether the machine restarted since the deployment began (its boot id):
 *
 * - the newest transient unit recorded (activation or rollback) is waited for first: it outlives
 *   the executor, and nothing means anything until it has finished;
 * - rolling-back: the rollback is run again (the decision was made; re-activating is harmless);
 * - the machine restarted: what runs is the boot default. The new system live after the restart
 *   in verifying/committing means its boot entry was already installed: verify again, commit. The
 *   new system live in any other phase (switch mode moves the boot entry first): roll back.
 *   Otherwise nothing of the deployment survived: interrupted (boot default restored if moved);
 * - same boot, accepted, or activating with no activation record: nothing was activated,
 *   interrupted;
 * - same boot, activating: the recorded exit decides, exactly as if the executor had seen it
 *   (0, or 4 for units already failing before → verify; 100 → reboot-required; anything else,
 *   "started but no end recorded" included → roll back);
 * - same boot, verifying/committing: the new system live → verify again and commit; else roll back.
 *
 * A commit interrupted MAX_INTERRUPTIONS times in a row counts as failed. Records are only
 * appended: the unfinished record's earlier snapshots stay in the history.
 */
import type { DeploymentRecord } from '@pullnix/shared';
import { profileGeneration } from '../commands/nix-env.ts';
import { isErrorCode } from '@pullnix/shared';
import { currentBootId, liveSystem, type PipelineContext } from './context.ts';
import { afterFallbackBoot, afterTrialBoot, afterTrialVerifyInterrupted } from './reboot.ts';
import { afterActivation, Deployment, failure, recordedActivation, restoreBootDefault, rollBack, verifyAndCommit, waitForUnit } from './deployment.ts';

export async function recoverDeployment(ctx: PipelineContext, record: DeploymentRecord): Promise<DeploymentRecord> {
  const d = Deployment.resume(ctx, record);
  const unit = [...record.phases].reverse().find((p) => p.unit !== undefined)?.unit;
  if (unit !== undefined) {
    d.log.event('deploy.recovering', { phase: record.phase, action: 'wait', unit });
    await waitForUnit(ctx, unit);
  }
  const live = liveSystem(ctx.config);
  const profileMoved = profileGeneration(ctx.config.paths.systemProfile) !== record.previous.generation;
  const bootNow = currentBootId(ctx.config);
  const rebooted = typeof record.bootId === 'string' && bootNow !== null && record.bootId !== bootNow;
  const fields = { phase: record.phase, live, toplevel: record.toplevel, previous: record.previous.system, rebooted };
  const resumed = '(resumed after the executor stopped)';

  // Reboot deployments (reboot.ts): the trial boot, its verification, the fallback reboot.
  if (record.phase === 'reboot-pending') return d.record;
  if (record.phase === 'awaiting-boot') {
    d.log.event('deploy.recovering', { ...fields, action: 'trial-boot' });
    return afterTrialBoot(ctx, d);
  }
  if (record.phase === 'fallback-reboot') {
    d.log.event('deploy.recovering', { ...fields, action: 'fallback-boot' });
    return afterFallbackBoot(ctx, d);
  }
  if ((record.phase === 'verifying' || record.phase === 'committing') && record.reboot?.trialBootId) {
    d.log.event('deploy.recovering', { ...fields, action: 'verify-trial' });
    return afterTrialVerifyInterrupted(ctx, d);
  }

  if (record.phase === 'rolling-back') {
    d.log.event('deploy.recovering', { ...fields, action: 'rollback' });
    // The rolling-back mark keeps the cause's text, not its code; the code is the phase that failed.
    const cause = record.phases.at(-1)?.detail ?? 'rolled back';
    const code = isErrorCode(record.error?.code) ? record.error.code : causeCode(record);
    return rollBack(ctx, d, code, `${cause} ${resumed}`, { profileMoved, activated: true });
  }

  if (rebooted) {
    if (live !== null && live === record.toplevel) {
      if (record.phase === 'verifying' || record.phase === 'committing') {
        d.log.event('deploy.recovering', { ...fields, action: 'verify' });
        return verifyAndCommit(ctx, d, { profileMoved });
      }
      d.log.event('deploy.recovering', { ...fields, action: 'rollback' });
      return rollBack(ctx, d, 'ACTIVATION_FAILED', `the machine restarted during ${record.phase} and booted this deployment's system before it was verified ${resumed}`, { profileMoved, activated: true });
    }
    return interrupted(ctx, d, `the machine restarted during ${record.phase}; it booted ${live ?? 'an unknown system'}, not this deployment's, so nothing of it is live`, profileMoved);
  }

  if (record.phase === 'accepted') return interrupted(ctx, d, 'the executor stopped before the activation started; nothing was activated', profileMoved);

  if (record.phase === 'activating') {
    const activation = recordedActivation(ctx, unit ?? '(none recorded)', 'the executor stopped while the activation ran, and no exit status was recorded');
    if (!activation.started) return interrupted(ctx, d, 'the executor stopped before the activation started; nothing was activated', profileMoved);
    d.log.event('deploy.recovering', { ...fields, action: 'activation-result', exit: activation.exit, unit: activation.unit });
    if (activation.exit === 0 && live !== record.toplevel) {
      return rollBack(ctx, d, 'ACTIVATION_FAILED', `the activation exited 0 but ${ctx.config.paths.currentSystem} is ${live ?? 'unresolvable'}, not this deployment's system ${resumed}`, { profileMoved, activated: true });
    }
    return afterActivation(ctx, d, activation, { profileMoved });
  }

  // verifying, committing: the activation exited 0 (or 4 for units already failing) before.
  if (live !== null && live === record.toplevel) {
    d.log.event('deploy.recovering', { ...fields, action: 'verify' });
    return verifyAndCommit(ctx, d, { profileMoved });
  }
  d.log.event('deploy.recovering', { ...fields, action: 'rollback' });
  return rollBack(ctx, d, causeCode(record), `the live system changed to ${live ?? 'an unresolvable path'} while the executor was stopped during ${record.phase} ${resumed}`, { profileMoved, activated: true });
}

/** Nothing of the deployment is live: put the boot default back if it moved (switch mode), record interrupted. */
async function interrupted(ctx: PipelineContext, d: Deployment, reason: string, profileMoved: boolean): Promise<DeploymentRecord> {
  if (profileMoved) {
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
