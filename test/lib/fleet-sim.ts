/**
 * Simulated pullnix hosts for the rings tests and benchmark: one process simulating many, each
 * host with its own state directory and the executor's own durable history (HistoryStore) and
 * metrics code (executorMetrics + TextfileWriter), so each writes exactly the
 * pullnix-executor.prom a real host writes. One HTTP server serves each host's textfile directory
 * at /hosts/<name>/metrics, the files concatenated as they are, plus one gauge of its own,
 * `pullnix_sim_round`, the simulation's round, which lets a test wait until Prometheus has
 * scraped every host's latest state. (On a real host node_exporter's textfile collector serves
 * the same samples among its own: test/system/11-predeploy-metrics.test.ts.)
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { emptyState, executorMetrics, EXECUTOR_METRICS_FILE, HistoryStore, type ExecutorState } from '@pullnix/executor';
import { createLogger, TextfileWriter, type DeploymentOutcome, type DeploymentRecord } from '@pullnix/shared';
import type { FileSdTarget } from './prometheus.ts';

export class SimHost {
  readonly name: string;
  readonly ring: string;
  readonly dir: string;
  /** Every commit this host ever deployed (whatever the outcome), in order. */
  readonly attempted: string[] = [];
  private readonly history: HistoryStore;
  private readonly state: ExecutorState = emptyState();
  private readonly writer: TextfileWriter;

  constructor(root: string, name: string, ring: string) {
    this.name = name;
    this.ring = ring;
    this.dir = join(root, name);
    mkdirSync(join(this.dir, 'textfiles'), { recursive: true });
    this.history = new HistoryStore(join(this.dir, 'history.jsonl'));
    this.history.load();
    this.writer = new TextfileWriter(join(this.dir, 'textfiles'), EXECUTOR_METRICS_FILE, createLogger({ level: 'error' }));
    this.writer.write(executorMetrics(this.history, this.state));
  }

  /** The commit the host runs (its last successful deployment). */
  get deployed(): string | null {
    return this.history.lastSucceeded()?.commit ?? null;
  }

  /** The newest deployment's commit, whatever its outcome. */
  get lastAttempt(): string | null {
    return this.attempted.at(-1) ?? null;
  }

  /** A finished deployment, recorded as the executor records it, then the metrics rewritten. */
  deploy(commit: string, outcome: DeploymentOutcome, at: number): void {
    this.attempted.push(commit);
    const id = this.history.all().length + 1;
    const iso = new Date(at).toISOString();
    const previous = this.history.lastSucceeded();
    const record: DeploymentRecord = {
      id,
      kind: 'deploy',
      commit,
      toplevel: `/nix/store/${commit.slice(0, 32)}-nixos-system-${this.name}`,
      activation: 'test',
      requestedBy: 'watcher',
      previous: { system: previous?.toplevel ?? null, generation: previous?.generation ?? null, failedUnits: [] },
      phase: 'finished',
      phases: [{ phase: 'accepted', at: iso }],
      outcome,
      error: null,
      activationExit: 0,
      generation: outcome === 'succeeded' ? id : null,
      startedAt: iso,
      finishedAt: iso,
    };
    this.history.append(record);
    this.writer.write(executorMetrics(this.history, this.state));
  }

  metricsText(): string {
    const dir = join(this.dir, 'textfiles');
    return readdirSync(dir)
      .filter((f) => f.endsWith('.prom'))
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('');
  }
}

export class FleetServer {
  round = 0;
  private readonly hosts = new Map<string, SimHost>();
  private readonly server: Server;
  port = 0;

  constructor() {
    this.server = createServer((req, res) => {
      const m = /^\/hosts\/([^/]+)\/metrics$/.exec(req.url ?? '');
      const host = m ? this.hosts.get(decodeURIComponent(m[1]!)) : undefined;
      if (!host) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(`${host.metricsText()}# TYPE pullnix_sim_round gauge\npullnix_sim_round ${this.round}\n`);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  add(host: SimHost): void {
    this.hosts.set(host.name, host);
  }

  /** file_sd targets: one per host, named by the label `host`. */
  targets(): FileSdTarget[] {
    return [...this.hosts.values()].map((h) => ({ targets: [`127.0.0.1:${this.port}`], labels: { host: h.name, ring: h.ring, __metrics_path__: `/hosts/${encodeURIComponent(h.name)}/metrics` } }));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
