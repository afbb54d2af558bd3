/**
 * The executor's metrics (pullnix-executor.prom in metrics.textfileDirectory): what is deployed,
 * pause, failure memory, deployments by outcome, the last verification and its checks. Derived
 * from the history and the state, which are durable, so the counters survive restarts.
 */
import { DEPLOYMENT_OUTCOMES, epochSeconds, MetricsText, VERSION, type DeploymentOutcome, type DeploymentRecord } from '@pullnix/shared';
import type { HistoryStore } from './store/history.ts';
import type { ExecutorState } from './store/state.ts';

export const EXECUTOR_METRICS_FILE = 'pullnix-executor.prom';

/** What the history alone cannot tell: whether the deployed system's kernel is the booted one. */
export interface RebootFacts {
  /** The deployed system's kernel, initrd or kernel modules differ from the booted system's. */
  deployedNeedsReboot: boolean;
}

export function executorMetrics(history: HistoryStore, state: ExecutorState, facts: RebootFacts = { deployedNeedsReboot: false }): string {
  const total = new Map<DeploymentOutcome, number>(DEPLOYMENT_OUTCOMES.map((o) => [o, 0]));
  const lastAt = new Map<DeploymentOutcome, string>();
  let lastVerified: DeploymentRecord | null = null;
  let lastDeploy: DeploymentRecord | null = null;
  let lastFinishedDeploy: DeploymentRecord | null = null;
  for (const r of history.all()) {
    if (r.kind === 'deploy' && r.outcome !== null) lastFinishedDeploy = r;
    if (r.outcome === null) continue;
    total.set(r.outcome, (total.get(r.outcome) ?? 0) + 1);
    if (r.finishedAt) lastAt.set(r.outcome, r.finishedAt);
    if (r.checks && r.checks.length > 0) lastVerified = r;
    if (r.kind === 'deploy') lastDeploy = r;
  }
  const reboots = { trial: 0, fallback: 0 };
  for (const r of history.all()) {
    if (typeof r.reboot?.generation === 'number' && r.reboot.fromBootId) reboots.trial++;
    if (r.reboot?.fallbackFromBootId) reboots.fallback++;
  }
  const deployed = history.lastSucceeded();
  const m = new MetricsText();
  m.add('pullnix_build_info', 'gauge', 'pullnix version of this daemon (always 1).', [[{ component: 'executor', version: VERSION }, 1]]);
  if (deployed) {
    m.add('pullnix_deployed_info', 'gauge', 'The deployed commit and system (the last successful deployment; always 1).', [
      [{ commit: deployed.commit, toplevel: deployed.toplevel, generation: deployed.generation === null ? '' : String(deployed.generation) }, 1],
    ]);
    if (deployed.generation !== null) m.gauge('pullnix_deployed_generation', 'System profile generation of the deployed system.', deployed.generation);
  }
  m.gauge('pullnix_paused', '1 while deployments are paused (by an operator, or by the executor after a failed rollback).', state.paused ? 1 : 0);
  m.gauge('pullnix_known_bad_commits', 'Commits in the failure memory, not deployed again until pullnix-ctl retry.', Object.keys(state.knownBad).length);
  m.add('pullnix_deployments_total', 'counter', 'Finished deployments by outcome.', DEPLOYMENT_OUTCOMES.map((o) => [{ outcome: o }, total.get(o) ?? 0] as const));
  m.add(
    'pullnix_last_deployment_timestamp_seconds',
    'gauge',
    'When the last deployment with this outcome finished.',
    DEPLOYMENT_OUTCOMES.filter((o) => lastAt.has(o)).map((o) => [{ outcome: o }, epochSeconds(lastAt.get(o)!)] as const),
  );
  if (lastFinishedDeploy) {
    // The commit an outcome belongs to, which the outcome counters cannot say: pullnix-promote
    // reads a failure on a commit from it (docs/rings.md).
    m.add('pullnix_last_deployment_info', 'gauge', 'The newest finished deployment of a commit: its commit and outcome (always 1).', [
      [{ commit: lastFinishedDeploy.commit, outcome: lastFinishedDeploy.outcome! }, 1],
    ]);
  }
  m.gauge(
    'pullnix_reboot_required',
    '1 when the newest deployment ended reboot-required (switch-to-configuration exit 100), or the deployed system has a kernel, initrd or kernel modules the machine has not booted (reboot.mode never).',
    lastDeploy?.outcome === 'reboot-required' || facts.deployedNeedsReboot ? 1 : 0,
  );
  const unfinished = history.unfinished();
  m.gauge('pullnix_reboot_pending', '1 while a deployment waits for reboot.window (reboot.mode window) or for its trial boot.', unfinished.some((r) => r.phase === 'reboot-pending' || r.phase === 'awaiting-boot') ? 1 : 0);
  m.add('pullnix_reboots_total', 'counter', 'Reboots pullnix asked for: into a trial system (kind=trial), back to the previous system after a failed trial (kind=fallback).', [
    [{ kind: 'trial' }, reboots.trial],
    [{ kind: 'fallback' }, reboots.fallback],
  ]);
  if (lastVerified) {
    const seconds = verificationSeconds(lastVerified);
    if (seconds !== null) m.gauge('pullnix_verification_duration_seconds', 'How long the last verification (all checks) took.', seconds);
    m.add(
      'pullnix_check_success',
      'gauge',
      "Each check's result in the last verification: 1 passed, 0 failed (not listed: not run).",
      lastVerified.checks!.filter((c) => c.passed !== null).map((c) => [{ check: c.name, kind: c.kind }, c.passed ? 1 : 0] as const),
    );
  }
  return m.text();
}

/** From the `verifying` mark to the mark after it. */
function verificationSeconds(r: DeploymentRecord): number | null {
  const i = r.phases.findIndex((p) => p.phase === 'verifying');
  const next = r.phases[i + 1];
  if (i < 0 || !next) return null;
  return (Date.parse(next.at) - Date.parse(r.phases[i]!.at)) / 1000;
}
