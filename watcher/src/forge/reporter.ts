/**
 * The commit-status reporter: turns each step of a deployment into a status on the commit at
 * the forge, context `pullnix/<ring>/<host>` (`pullnix/<host>` without a ring), through the
 * durable outbox (outbox.ts). docs/report.md has the statuses and their descriptions:
 *
 *   building            pending "building"
 *   deploy requested    pending "verifying N checks"
 *   outcome succeeded   success "deployed generation G, N/N checks, 38 s"
 *   outcome otherwise   failure, the reason pullnix-ctl shows ("rolled back: check http-api: 503")
 *   refused             failure "refused: commit not signed" (trust), "build failed: …", …
 *   newer head          error "superseded by <sha>" for a commit left pending
 *
 * Exactly one terminal status per (host, commit), equal to the history: the outcome comes from
 * the executor's deployment record, and a deployment whose answer the watcher never saw (it was
 * killed, the machine lost power) is looked up in the executor's history on the next start
 * (reconcile), so its status is posted late but posted. The commit left pending is remembered in
 * the outbox's file, written before the deploy request goes out.
 */
import type { DeploymentRecord, Logger, ReportConfig } from '@pullnix/shared';
import type { StepEvent, StepObserver } from '../pipeline/report.ts';
import { createForgeClient, type ForgeClient, type StatusBody, type StatusState } from './client.ts';
import { Outbox, TERMINAL, type FlushResult } from './outbox.ts';
import { join } from 'node:path';

export const OUTBOX_FILE = 'report-outbox.json';

export interface ReporterOptions {
  report: ReportConfig;
  host: string;
  /** This machine's ring (settings.ring.name); null: no ring. */
  ring: string | null;
  stateDir: string;
  logger: Logger;
  now: () => number;
  /** Tests give a client; defaults to the one report.forge names. */
  client?: ForgeClient;
  /** The checks a deployment runs as this configuration has them ("verifying N checks"). */
  checks?: number;
}

/** The decentralised halt's answer for one commit. */
export interface HaltVerdict {
  halted: boolean;
  failures: number;
  ring: string;
  message: string;
}

export function statusContext(host: string, ring: string | null): string {
  return ring === null ? `pullnix/${host}` : `pullnix/${ring}/${host}`;
}

export class CommitStatusReporter {
  readonly context: string;
  private readonly options: ReporterOptions;
  private readonly client: ForgeClient;
  readonly outbox: Outbox;
  private waker: (() => void) | null = null;
  /** The commit whose halt was last logged (a halted head is looked at every poll; logged once). */
  private haltLogged: string | null = null;

  constructor(options: ReporterOptions) {
    this.options = options;
    this.context = statusContext(options.host, options.ring);
    this.client = options.client ?? createForgeClient(options.report);
    this.outbox = new Outbox({ path: join(options.stateDir, OUTBOX_FILE), client: this.client, logger: options.logger, limit: options.report.outboxLimit, now: options.now });
  }

  /**
   * The deployment-step observer (pipeline/report.ts `Steps`). The pipeline's own `superseded`
   * step is not used: the commit left pending is remembered in the outbox's file, across the
   * restart that follows every deployment, and superseded by the next commit that is built.
   */
  readonly onStep: StepObserver = (event: StepEvent) => {
    switch (event.step) {
      case 'building':
        this.building(event.commit);
        return;
      case 'deploying':
        this.deploying(event.commit, this.options.checks ?? 0);
        return;
      case 'succeeded':
      case 'failed':
      case 'waiting':
        if (event.deployment) this.outcome(event.deployment);
        else if (event.step === 'failed') this.refused(event.commit, `build failed: ${event.detail ?? 'see the journal'}`);
        return;
      case 'refused':
        // Refused by this host for good. Known bad (to the watcher or the executor) is not new:
        // its terminal status was posted when it failed.
        if (event.outcome !== 'known-bad' && !(event.outcome === 'refused' && /^KNOWN_BAD/.test(event.detail ?? ''))) this.refused(event.commit, `refused: ${event.detail ?? event.outcome ?? 'refused'}`);
        return;
      default:
        return;
    }
  };

  /** The build of `sha` starts. A different commit still pending is superseded by it. */
  building(sha: string): void {
    const open = this.outbox.open;
    if (open && open.sha !== sha) this.post(open.sha, 'error', `superseded by ${sha}`);
    this.outbox.setOpen({ sha, requested: false });
    this.post(sha, 'pending', 'building');
  }

  /** The deploy request for `sha` is about to go out (remembered first: a crash after it is reconciled). */
  deploying(sha: string, checks: number): void {
    this.outbox.setOpen({ sha, requested: true });
    this.post(sha, 'pending', `verifying ${checks} check${checks === 1 ? '' : 's'}`);
  }

  /** The executor's record of a deployment of ours (its answer to deploy, or found in history). */
  outcome(record: DeploymentRecord, newer?: string): void {
    const status = describeRecord(record, newer);
    if (status === null) return;
    this.post(record.commit, status.state, status.description);
  }

  /** The watcher refused `sha` itself (untrusted, build failed, vulnerable): a terminal failure. */
  refused(sha: string, reason: string): void {
    this.post(sha, 'failure', reason);
  }

  /**
   * The commit left pending by a deployment whose answer never came (SIGKILL, power cut): its
   * outcome from the executor's history (newest first), if it has one by now.
   */
  reconcile(history: DeploymentRecord[]): void {
    const open = this.outbox.open;
    if (!open?.requested) return;
    const i = history.findIndex((d) => d.kind === 'deploy' && d.commit === open.sha);
    const record = history[i];
    if (!record || record.outcome === null) return;
    this.options.logger.event('report.reconciled', { commit: open.sha, deployment: record.id, outcome: record.outcome });
    this.outcome(record, i > 0 ? history[i - 1]?.commit : undefined);
  }

  /** Whether a deployment answer is still owed for a commit (reconcile has work). */
  get awaiting(): string | null {
    const open = this.outbox.open;
    return open?.requested ? open.sha : null;
  }

  /**
   * The decentralised halt (report.haltAfter): refuse `sha` when the forge shows at least
   * haltAfter failure statuses on it from this machine's ring. null: no halt configured. When the
   * forge cannot answer, the commit is not halted (the outage is logged): an unreachable forge
   * must not stop every deployment of the fleet.
   */
  async halt(sha: string, signal?: AbortSignal): Promise<HaltVerdict | null> {
    const { haltAfter } = this.options.report;
    if (haltAfter === null) return null;
    const ring = this.options.ring ?? '(no ring)';
    const inRing = this.options.ring === null ? (c: string) => /^pullnix\/[^/]+$/.test(c) : (c: string) => c.startsWith(`pullnix/${this.options.ring}/`);
    let failures: number;
    try {
      failures = (await this.client.latest(sha, signal)).filter((s) => inRing(s.context) && s.state === 'failure').length;
    } catch (error) {
      this.options.logger.event('report.halt_unknown', { commit: sha, ring, error: (error as Error).message });
      return { halted: false, failures: 0, ring, message: 'the forge did not answer; not halted' };
    }
    const halted = failures >= haltAfter;
    const message = `halted: ${failures} failure${failures === 1 ? '' : 's'} in ring ${ring}`;
    if (halted && this.haltLogged !== sha) this.options.logger.event('report.halted', { commit: sha, ring, failures, halt_after: haltAfter });
    this.haltLogged = halted ? sha : null;
    return { halted, failures, ring, message };
  }

  /** Post what is queued until the signal aborts; a new status wakes it. */
  async run(signal: AbortSignal, sleep: (ms: number, signal: AbortSignal, wake: (fn: () => void) => void) => Promise<void>): Promise<void> {
    while (!signal.aborted) {
      const result: FlushResult = await this.outbox.flush(signal);
      if (signal.aborted) break;
      await sleep(result.nextInMs ?? 3_600_000, signal, (fn) => {
        this.waker = fn;
      });
      this.waker = null;
    }
  }

  private post(sha: string, state: StatusState, description: string): void {
    const status: StatusBody = { state, description, context: this.context, targetUrl: this.options.report.targetUrl };
    const queued = this.outbox.enqueue(sha, status);
    if (TERMINAL.has(state) && this.outbox.open?.sha === sha) this.outbox.setOpen(null);
    if (queued) this.waker?.();
  }
}

/** A deployment record as a status; null: nothing to say (a rollback, or still running). */
export function describeRecord(d: DeploymentRecord, newer?: string): { state: StatusState; description: string } | null {
  if (d.kind !== 'deploy') return null;
  if (d.outcome === null) {
    if (d.phase === 'reboot-pending') return { state: 'pending', description: `reboot pending until ${d.reboot?.windowStart ?? d.reboot?.pendingUntil ?? 'the reboot window'}` };
    return null;
  }
  const checks = d.checks ?? [];
  switch (d.outcome) {
    case 'succeeded': {
      const passed = checks.filter((c) => c.passed === true).length;
      const secs = d.finishedAt ? Math.max(0, Math.round((Date.parse(d.finishedAt) - Date.parse(d.startedAt)) / 1000)) : null;
      return { state: 'success', description: `deployed generation ${d.generation ?? '?'}, ${passed}/${checks.length} checks${secs === null ? '' : `, ${secs} s`}` };
    }
    case 'superseded':
      return { state: 'error', description: newer ? `superseded by ${newer}` : 'superseded by a newer deployment' };
    default: {
      const failed = checks.find((c) => c.passed === false);
      const words = d.outcome.replace('-', ' ');
      if (failed) return { state: 'failure', description: `${words}: check ${failed.name}: ${firstLine(failed.error ?? 'failed')}` };
      return { state: 'failure', description: d.error ? `${words}: ${firstLine(d.error.message)}` : words };
    }
  }
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!.trim();
}
