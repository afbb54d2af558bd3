/**
 * Prometheus metrics for node_exporter's textfile collector: no port opened, no new protocol
 * between the daemons. Each daemon writes its own file (`pullnix-executor.prom`,
 * `pullnix-watcher.prom`) into metrics.textfileDirectory, atomically (temporary file + rename, so
 * the collector never reads half a file), on every change. docs/metrics.md lists every metric.
 */
import { chmodSync, lstatSync, rmSync, statSync } from 'node:fs';
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
      this.evictSquatter(this.path);
      // 0644: node_exporter runs as its own user.
      writeFileAtomic(this.path, text, { mode: 0o644 });
      this.last = text;
    } catch (error) {
      this.log.event('metrics.write_failed', { file: this.path, error: (error as Error).message });
    }
  }

  /**
   * The textfile directory is shared (the watcher's user may create files in it): whatever stands
   * at this daemon's file name and is not a regular file of its own (a directory, a link, another
   * user's file, put there before this daemon first wrote) is removed, so it can neither block nor
   * stand in for this file. In a sticky directory only the owner (or root) can do that.
   */
  private evictSquatter(path: string): void {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return;
    }
    if (st.isFile() && st.uid === process.geteuid?.()) return;
    rmSync(path, { recursive: true, force: true });
    this.log.event('metrics.squatter_removed', { file: path, owner: st.uid, type: st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other' });
  }
}

/**
 * The executor's side of a shared textfile directory: one the watcher's group may write must be
 * sticky (mode +t), so that the watcher can create its own file there but neither replace nor
 * remove root's (rename(2) and unlink(2) in a sticky directory need the file's owner). Set by the
 * executor if the directory lacks it; false when it could not be.
 */
export function protectTextfileDirectory(dir: string | null, log: Logger): boolean {
  if (dir === null) return true;
  try {
    const st = statSync(dir);
    if ((st.mode & 0o022) === 0 || (st.mode & 0o1000) !== 0) return true;
    chmodSync(dir, (st.mode & 0o7777) | 0o1000);
    log.event('metrics.directory_protected', { dir, mode_was: (st.mode & 0o7777).toString(8), mode: ((st.mode & 0o7777) | 0o1000).toString(8) });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    log.event('metrics.write_failed', { file: dir, error: `cannot make the textfile directory sticky: ${(error as Error).message}` });
    return false;
  }
}
