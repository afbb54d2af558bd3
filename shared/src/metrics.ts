/**
 * Prometheus metrics for node_exporter's textfile collector: no port opened, no new protocol
 * between the daemons. Each daemon writes its own file (`pullnix-executor.prom`,
 * `pullnix-watcher.prom`) into metrics.textfileDirectory, atomically (temporary file + rename, so
 * the collector never reads half a file), on every change. docs/metrics.md lists every metric.
 */
import { join } from 'node:path';
import { writeFileAtomic } from './fs/atomic.ts';
import type { Logger } from './log/logger.ts';

export type MetricType = 'gauge' | 'counter';
export type Labels = Record<string, string>;

/** Builds the text exposition format: HELP and TYPE once per metric, then its samples. */
export class MetricsText {
  private readonly parts: string[] = [];

  add(name: string, type: MetricType, help: string, samples: readonly (readonly [Labels, number])[]): this {
    if (samples.length === 0) return this;
    this.parts.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.parts.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    return this;
  }

  /** A single unlabelled gauge. */
  gauge(name: string, help: string, value: number): this {
    return this.add(name, 'gauge', help, [[{}, value]]);
  }

  text(): string {
    return this.parts.length === 0 ? '' : `${this.parts.join('\n')}\n`;
  }
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Seconds since the epoch of an ISO time, for `_timestamp_seconds` metrics. */
export function epochSeconds(iso: string): number {
  return Date.parse(iso) / 1000;
}

/**
 * Writes `<dir>/<file>` when its content changed (the collector reads mtime-less content, and an
 * unchanged file need not be rewritten). A failure is logged, never thrown: metrics must not stop
 * a deployment.
 */
export class TextfileWriter {
  private last: string | null = null;
  readonly path: string | null;
  private readonly log: Logger;

  constructor(dir: string | null, file: string, log: Logger) {
    this.path = dir === null ? null : join(dir, file);
    this.log = log;
  }

  write(text: string): void {
    if (this.path === null || text === this.last) return;
    try {
      // 0644: node_exporter runs as its own user.
      writeFileAtomic(this.path, text, { mode: 0o644 });
      this.last = text;
    } catch (error) {
      this.log.event('metrics.write_failed', { file: this.path, error: (error as Error).message });
    }
  }
}
