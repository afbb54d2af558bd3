/**
 * A real Prometheus (Debian's `prometheus`) for tests: its own config, TSDB and port in a temp
 * directory, scraping the targets of a file_sd file the test rewrites (file_sd_configs,
 * Prometheus docs/configuration/configuration.md "<file_sd_config>": a JSON list of
 * {targets, labels}; `__metrics_path__` among the labels sets a target's path).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './git-ssh-server.ts';

export interface FileSdTarget {
  targets: string[];
  labels: Record<string, string>;
}

export class PrometheusServer {
  readonly url: string;
  private readonly proc: ChildProcess;
  private readonly sdFile: string;
  private exited = false;
  private stderr = '';

  private constructor(url: string, proc: ChildProcess, sdFile: string) {
    this.url = url;
    this.proc = proc;
    this.sdFile = sdFile;
    proc.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    proc.once('exit', () => (this.exited = true));
  }

  static async start(dir: string, options: { scrapeInterval?: string } = {}): Promise<PrometheusServer> {
    mkdirSync(join(dir, 'data'), { recursive: true });
    const sdFile = join(dir, 'targets.json');
    writeFileSync(sdFile, '[]\n');
    const interval = options.scrapeInterval ?? '500ms';
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global:',
        `  scrape_interval: ${interval}`,
        `  scrape_timeout: ${interval}`,
        'scrape_configs:',
        '  - job_name: pullnix',
        '    file_sd_configs:',
        `      - files: ["${sdFile}"]`,
        '        refresh_interval: 1s',
      ].join('\n') + '\n',
    );
    const port = await freePort();
    const proc = spawn(
      'prometheus',
      [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const server = new PrometheusServer(`http://127.0.0.1:${port}`, proc, sdFile);
    await server.waitFor(async () => (await fetch(`${server.url}/-/ready`)).ok, 'Prometheus ready');
    return server;
  }

  /** Replace the scrape targets (atomically: Prometheus watches the file). */
  setTargets(targets: FileSdTarget[]): void {
    writeFileSync(`${this.sdFile}.tmp`, JSON.stringify(targets));
    renameSync(`${this.sdFile}.tmp`, this.sdFile);
  }

  async query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const r = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const body = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`query ${promql}: ${JSON.stringify(body)}`);
    return body.data.result;
  }

  /** Poll `condition` (no fixed sleep: as soon as it holds), failing after `limit` tries. */
  async waitFor(condition: () => Promise<boolean>, what: string, limit = 2400): Promise<void> {
    for (let i = 0; i < limit; i++) {
      if (this.exited) throw new Error(`prometheus exited: ${this.stderr}`);
      try {
        if (await condition()) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out waiting for ${what}; prometheus: ${this.stderr}`);
  }

  stop(): void {
    if (!this.exited) this.proc.kill('SIGTERM');
  }
}
