/**
 * Crash recovery (DESIGN.md "Crash safety"): on start, a deployment recorded as started and not
 * finished is resolved by looking at what is live (`readlink -f` of paths.currentSystem):
 *
 * - it was rolling back: previous system live → rolled-back (the rollback got through);
 *   otherwise the rollback is run again (the decision to roll back was already made).
 * - its toplevel is live (it was activated): verify again, then commit or roll back.
 * - anything else (it died before or while activating; the previous system is still live):
 *   interrupted. A commit interrupted MAX_INTERRUPTIONS times in a row counts as failed.
 *
 * Records are only appended: the unfinished record's earlier snapshots stay in the history.
 */
import type { DeploymentRecord } from '@pullnix/shared';
import { profileGeneration, setProfile } from '../commands/nix-env.ts';
import { installBootEntry } from '../commands/switch-to-configuration.ts';
import { describeFailure, isErrorCode } from '@pullnix/shared';
import { liveSystem, type PipelineContext } from './context.ts';
import { Deployment, failure, rollBack, verifyAndCommit } from './deployment.ts';

export async function recoverDeployment(ctx: PipelineContext, record: DeploymentRecord): Promise<DeploymentRecord> {
  const d = Deployment.resume(ctx, record);
  const live = liveSystem(ctx.config);
  const profileMoved = profileGeneration(ctx.config.paths.systemProfile) !== record.previous.generation;
  const fields = { phase: record.phase, live, toplevel: record.toplevel, previous: record.previous.system };
  if (record.phase === 'rolling-back') {
    d.log.event('deploy.recovering', { ...fields, action: 'rollback' });
    // The rolling-back mark keeps the cause's text, not its code; the code is the phase that failed.
    const cause = record.phases.at(-1)?.detail ?? 'rolled back';
    const code = isErrorCode(record.error?.code) ? record.error.code : causeCode(record);
    if (live !== null && live === record.previous.system && !profileMoved) {
      return d.finish('rolled-back', failure(code, `${cause} (the executor stopped during the rollback; the previous system was live on restart)`));
    }
    return rollBack(ctx, d, code, `${cause} (resumed after the executor stopped during the rollback)`, { profileMoved, activated: true });
  }
  if (live !== null && live === record.toplevel && record.phase !== 'accepted') {
    d.log.event('deploy.recovering', { ...fields, action: 'verify' });
    return verifyAndCommit(ctx, d, { profileMoved });
  }
  const reason = `the executor stopped during ${record.phase}; on restart the live system was ${live ?? 'unknown'}, not this deployment's`;
  if (profileMoved && record.previous.system !== null) {
    // Only switch mode moves the profile before activation: put the boot default back.
    const set = await setProfile(ctx.runner, ctx.config.paths.systemProfile, record.previous.system);
    const boot = set.exitCode === 0 ? await installBootEntry(ctx.runner, record.previous.system, ctx.config.activationTimeoutSec * 1000) : null;
    if (set.exitCode !== 0 || (boot !== null && boot.exitCode !== 0)) {
      const why = set.exitCode !== 0 ? describeFailure(set) : describeFailure(boot!);
      return d.finish('rollback-failed', failure('ROLLBACK_FAILED', `${reason}; restoring the boot default failed: ${why}`));
    }
  }
  return d.finish('interrupted', failure('INTERRUPTED', reason));
}

/** The phase before rolling-back tells what failed. */
function causeCode(record: DeploymentRecord): 'ACTIVATION_FAILED' | 'VERIFY_FAILED' | 'COMMIT_FAILED' {
  const before = record.phases.filter((p) => p.phase !== 'rolling-back').at(-1)?.phase;
  return before === 'verifying' ? 'VERIFY_FAILED' : before === 'committing' ? 'COMMIT_FAILED' : 'ACTIVATION_FAILED';
}
