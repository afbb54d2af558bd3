/**
 * Invariant 5 at the end of a campaign: after the last fault, a good commit pushed to the
 * branch is deployed within two poll intervals plus its build and its deployment. The bound is
 * computed from the configured poll interval and what this very commit measured in the journal:
 *
 *   push → record finished  ≤  2 · poll.intervalSec  +  build  +  deployment
 *     build       poll.new_head → deploy.requested (fetch, checkout, nix build, GC roots, signing)
 *     deployment  deploy.requested → the record's finishedAt (acceptance, activation, verification,
 *                 commit)
 *
 * i.e. the watcher noticed the push within two polls and nothing waited in between.
 */
import type { TestBed } from '../system/lib/bed.ts';
import { check, describeRecord, type Check } from './invariants.ts';
import type { HistoryTail } from './observe.ts';
import type { GenerationSpec } from '../system/lib/bed.ts';
import { waitForSettle } from './settle.ts';

export interface Convergence {
  check: Check;
  commit: string;
  latencyMs: number | null;
  boundMs: number | null;
}

export async function convergenceProbe(bed: TestBed, tail: HistoryTail, spec: GenerationSpec, options: { pollIntervalSec: number; settleTimeoutMs: number }): Promise<Convergence> {
  const commit = await bed.commit(spec, `chaos: ${spec.label} (convergence probe after the last fault)`);
  const pushedAt = Date.now();
  const settled = await waitForSettle(bed, tail, commit, { timeoutMs: options.settleTimeoutMs, pollIntervalSec: options.pollIntervalSec });
  const record = bed.deploymentsOf(commit).at(-1);
  if (!settled.settled || record?.outcome !== 'succeeded' || record.finishedAt === null) {
    const why = settled.settled ? (record ? describeRecord(record) : 'never requested') : settled.why;
    return { check: check(5, false, `the final good commit ${commit.slice(0, 8)} did not converge: ${why}`), commit, latencyMs: null, boundMs: null };
  }
  const newHead = (await bed.events('poll.new_head', { commit }, ['pullnix-watcher.service']))[0];
  const requested = (await bed.events('deploy.requested', { commit }, ['pullnix-watcher.service'])).at(-1);
  const finished = Date.parse(record.finishedAt);
  const latencyMs = finished - pushedAt;
  if (!newHead || !requested) return { check: check(5, false, `converged in ${latencyMs} ms, but poll.new_head/deploy.requested for ${commit.slice(0, 8)} are missing from the journal`), commit, latencyMs, boundMs: null };
  const buildMs = requested.at.getTime() - newHead.at.getTime();
  const deployMs = finished - requested.at.getTime();
  const boundMs = 2 * options.pollIntervalSec * 1000 + buildMs + deployMs;
  const text = `the final good commit ${commit.slice(0, 8)} deployed ${(latencyMs / 1000).toFixed(1)} s after its push; bound ${(boundMs / 1000).toFixed(1)} s = 2 × ${options.pollIntervalSec} s poll + build ${(buildMs / 1000).toFixed(1)} s + deployment ${(deployMs / 1000).toFixed(1)} s (noticed ${((newHead.at.getTime() - pushedAt) / 1000).toFixed(1)} s after the push)`;
  return { check: check(5, latencyMs <= boundMs, text), commit, latencyMs, boundMs };
}
