/**
 * The watcher's metrics (pullnix-watcher.prom in metrics.textfileDirectory): the remote head,
 * drift, polls, preDeploy postponements. The executor writes its own file; node_exporter merges
 * the directory, so the two daemons need no protocol for this.
 */
import { MetricsText, VERSION } from '@pullnix/shared';

export const WATCHER_METRICS_FILE = 'pullnix-watcher.prom';

export interface WatcherFigures {
  remoteHead: string | null;
  /** What the executor last said is deployed; undefined until it answered. */
  deployedCommit: string | null | undefined;
  lastPollAt: number | null;
  lastSuccessfulPollAt: number | null;
  postponed: number;
}

export function watcherMetrics(f: WatcherFigures): string {
  const m = new MetricsText();
  m.add('pullnix_build_info', 'gauge', 'pullnix version of this daemon (always 1).', [[{ component: 'watcher', version: VERSION }, 1]]);
  if (f.remoteHead !== null) m.add('pullnix_remote_head_info', 'gauge', 'The head of the followed branch at the last successful poll (always 1).', [[{ commit: f.remoteHead }, 1]]);
  if (f.remoteHead !== null && f.deployedCommit !== undefined) {
    m.gauge('pullnix_drift', '1 when the remote head is not the deployed commit.', f.remoteHead === f.deployedCommit ? 0 : 1);
  }
  if (f.lastPollAt !== null) m.gauge('pullnix_last_poll_timestamp_seconds', 'When the watcher last asked the remote for the branch head.', f.lastPollAt / 1000);
  if (f.lastSuccessfulPollAt !== null) m.gauge('pullnix_last_successful_poll_timestamp_seconds', 'When a poll last got the branch head from the remote.', f.lastSuccessfulPollAt / 1000);
  m.add('pullnix_predeploy_postponed_total', 'counter', 'Deployments the preDeploy hook postponed ("not now") since the watcher started.', [[{}, f.postponed]]);
  return m.text();
}
