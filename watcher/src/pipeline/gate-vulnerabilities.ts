/**
 * The vulnerability gate (gates.vulnerabilities, the first `Gate` of gates.ts, docs/vulnerabilities.md): between the build and
 * the deploy request, the new system's runtime closure and the live system's are scanned with
 * vulnix; the new system is refused when it has a vulnerability at or above `minSeverity`, not in
 * `allow`, that the live system does not have (same package name and CVE). What the new system no
 * longer has is reported as fixed.
 *
 * Scan results are cached per store path in the watcher's memory (watcher.json), so the live
 * system is not scanned again while it is unchanged, and a system the gate let through is
 * already known when it becomes the live one. Persisted rather than kept in memory because the
 * executor restarts the watcher after every deployment outcome: an in-memory cache would be empty
 * exactly when the next commit needs the live system's result. A cached live result is only ever
 * trusted to let a system through: before a refusal the live system is scanned again, so a
 * refusal never rests on an older vulnerability database than the new system's scan.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeFailure, type Logger, type Runner, type VulnerabilityDecision, type VulnerabilityFinding, type VulnerabilityGateConfig, type VulnerabilityScan } from '@pullnix/shared';
import { readVulnixResult, vulnixArgv, type VulnixAnswer } from '../commands/vulnix.ts';
import type { WatcherMemory } from '../memory.ts';
import type { Gate, GateCandidate, GateContext, GateVerdict } from './gates.ts';

/** How many scanned systems the cache keeps (the live one, the last few built ones). */
export const SCAN_CACHE_SIZE = 4;
/** A cached result older than this is scanned again (new CVEs are published every day). */
export const SCAN_CACHE_MAX_AGE_MS = 24 * 3600 * 1000;
/**
 * A vulnix report larger than this is not read (and the system is refused, as an unreadable
 * report): a whole NixOS closure with every CVE described is a few MiB.
 */
export const MAX_REPORT_BYTES = 64 * 1024 * 1024;
/** The report's lists are cut here (the counts stay whole). */
const LIST_LIMIT = 100;
/** CVEs named in one log line. */
const LOG_LIMIT = 20;

export interface Comparison {
  /** In the new system, at or above minSeverity, not allowed, not in the live one. */
  new: VulnerabilityFinding[];
  /** In the live system, not in the new one. */
  fixed: VulnerabilityFinding[];
  /** Would be new, but `allow` lists the CVE. */
  allowed: VulnerabilityFinding[];
}

const keyOf = (f: VulnerabilityFinding) => `${f.package}\0${f.id}`;
const byScore = (a: VulnerabilityFinding, b: VulnerabilityFinding) => (b.score ?? -1) - (a.score ?? -1) || a.id.localeCompare(b.id) || a.package.localeCompare(b.package);

/** A finding counts from minSeverity on; one without a CVSS v3 score only when minSeverity is 0. */
export function meetsSeverity(f: VulnerabilityFinding, minSeverity: number): boolean {
  return f.score === null ? minSeverity === 0 : f.score >= minSeverity;
}

/** The comparison the gate decides on; lists sorted by score, highest first. */
export function compareScans(live: readonly VulnerabilityFinding[], next: readonly VulnerabilityFinding[], settings: Pick<VulnerabilityGateConfig, 'minSeverity' | 'allow'>): Comparison {
  const liveKeys = new Set(live.map(keyOf));
  const nextKeys = new Set(next.map(keyOf));
  const allow = new Set(settings.allow);
  const introduced = next.filter((f) => !liveKeys.has(keyOf(f)) && meetsSeverity(f, settings.minSeverity));
  return {
    new: introduced.filter((f) => !allow.has(f.id)).sort(byScore),
    allowed: introduced.filter((f) => allow.has(f.id)).sort(byScore),
    fixed: live.filter((f) => !nextKeys.has(keyOf(f))).sort(byScore),
  };
}

/** `CVE-2024-0001 (libfoo 1.2, 9.8)` */
export function describeFinding(f: VulnerabilityFinding): string {
  return `${f.id} (${f.package}${f.version ? ` ${f.version}` : ''}, ${f.score === null ? 'no CVSS v3 score' : f.score.toFixed(1)})`;
}

function logList(findings: readonly VulnerabilityFinding[]): string {
  const shown = findings.slice(0, LOG_LIMIT).map(describeFinding).join(', ');
  return findings.length > LOG_LIMIT ? `${shown}, and ${findings.length - LOG_LIMIT} more` : shown;
}

export type ScanVerdict =
  /** Ask the executor to deploy (passed, warned, or the scan failed and onError = allow). `scan` is null when the gate is off. */
  | { verdict: 'deploy'; scan: VulnerabilityScan | null }
  /** New vulnerabilities and onNew = refuse: remembered like a failed build. */
  | { verdict: 'refuse'; scan: VulnerabilityScan; message: string; detail: string }
  /** The scan failed and onError = refuse: not deployed now, tried again after a back-off. */
  | { verdict: 'retry'; scan: VulnerabilityScan; message: string }
  | { verdict: 'stopped' };

export interface VulnerabilityGateOptions {
  settings: VulnerabilityGateConfig;
  runner: Runner;
  logger: Logger;
  /** vulnix's --cache-dir (its NVD database): `<stateDir>/vulnix`. */
  cacheDir: string;
  /** The live system's link (config.paths.currentSystem). */
  currentSystem: string;
  /** The watcher's memory; the gate keeps `vulnerabilities` in it. */
  memory: WatcherMemory;
  save: () => void;
  now: () => number;
}

type Scanned = { ok: true; findings: VulnerabilityFinding[] } | { ok: false; error: string; stopped: boolean; unreadable?: true };

export class VulnerabilityGate implements Gate {
  readonly name = 'vulnerabilities';
  readonly state = 'scanning' as const;
  readonly outcomes = { refuse: 'vulnerable', wait: 'scan-failed' } as const;
  private readonly o: VulnerabilityGateOptions;

  constructor(options: VulnerabilityGateOptions) {
    this.o = options;
  }

  get enabled(): boolean {
    return this.o.settings.enable;
  }

  /** The last decision, as reported to the executor (persisted: it survives the restart after a deployment); null with the gate off. */
  get lastScan(): VulnerabilityScan | null {
    return this.enabled ? (this.o.memory.vulnerabilities?.last ?? null) : null;
  }

  report(): { vulnerabilities?: VulnerabilityScan } {
    const last = this.lastScan;
    return last ? { vulnerabilities: last } : {};
  }

  /** As a gate: a refusal is remembered against the commit; a failed scan (onError = refuse) is tried again after a back-off. */
  async evaluate(candidate: GateCandidate, context: GateContext): Promise<GateVerdict> {
    const v = await this.check(candidate.commit, candidate.toplevel, context.signal);
    switch (v.verdict) {
      case 'deploy':
        return { verdict: 'pass' };
      case 'stopped':
        return v;
      case 'retry':
        return { verdict: 'wait', reason: v.message, retry: 'backoff' };
      case 'refuse':
        return { verdict: 'refuse', reason: v.message, detail: v.detail };
    }
  }

  /** Decide on a built system. Runs no command when the gate is off or the system is the live one. */
  async check(commit: string, toplevel: string, signal?: AbortSignal): Promise<ScanVerdict> {
    if (!this.enabled) return { verdict: 'deploy', scan: null };
    const { settings, logger } = this.o;
    const started = performance.now();
    const deadline = started + settings.timeoutSec * 1000;
    let live: string;
    try {
      live = realpathSync(this.o.currentSystem);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      return this.scanFailed(commit, toplevel, null, 'live', this.o.currentSystem, `the live system ${this.o.currentSystem} cannot be resolved: ${code}`);
    }
    if (live === toplevel) {
      // The same closure: nothing can be new or fixed.
      const scan = this.record(commit, toplevel, live, 'passed', { new: [], fixed: [], allowed: [] }, null);
      logger.event('vulnerabilities.passed', { commit, toplevel, live, new: 0, fixed: 0, allowed: 0, same_as_live: true, ms: 0 });
      return { verdict: 'deploy', scan };
    }

    const next = await this.scan(toplevel, deadline, signal);
    if (!next.ok) return this.notScanned(next, commit, toplevel, live, 'new', toplevel);
    let liveCached = true;
    let liveFindings = this.cached(live);
    if (!liveFindings) {
      liveCached = false;
      const scanned = await this.scan(live, deadline, signal);
      if (!scanned.ok) return this.notScanned(scanned, commit, toplevel, live, 'live', live);
      liveFindings = scanned.findings;
    }
    let comparison = compareScans(liveFindings, next.findings, settings);
    if (comparison.new.length > 0 && liveCached) {
      // Never refuse on a cached live result: the database may have learnt of these since.
      liveCached = false;
      const scanned = await this.scan(live, deadline, signal);
      if (!scanned.ok) return this.notScanned(scanned, commit, toplevel, live, 'live', live);
      comparison = compareScans(scanned.findings, next.findings, settings);
    }
    const ms = Math.round(performance.now() - started);

    if (comparison.fixed.length > 0) {
      logger.event('vulnerabilities.fixed', { commit, count: comparison.fixed.length, cves: logList(comparison.fixed) });
    }
    if (comparison.new.length === 0) {
      const scan = this.record(commit, toplevel, live, 'passed', comparison, null);
      logger.event('vulnerabilities.passed', { commit, toplevel, live, new: 0, fixed: comparison.fixed.length, allowed: comparison.allowed.length, live_cached: liveCached, ms });
      return { verdict: 'deploy', scan };
    }
    const fields = { commit, toplevel, live, count: comparison.new.length, cves: logList(comparison.new), min_severity: settings.minSeverity, live_cached: liveCached, ms };
    if (settings.onNew === 'warn') {
      logger.event('vulnerabilities.warned', fields);
      return { verdict: 'deploy', scan: this.record(commit, toplevel, live, 'warned', comparison, null) };
    }
    logger.event('vulnerabilities.refused', fields);
    const n = comparison.new.length;
    const message = `${n} new vulnerabilit${n === 1 ? 'y' : 'ies'} at or above CVSS ${settings.minSeverity} that the live system does not have: ${logList(comparison.new)}; not deployed (gates.vulnerabilities.onNew = refuse; accept one with gates.vulnerabilities.allow)`;
    const detail = comparison.new.map((f) => `${f.id}\t${f.package}\t${f.version ?? '-'}\t${f.score ?? '-'}`).join('\n');
    return { verdict: 'refuse', scan: this.record(commit, toplevel, live, 'refused', comparison, null), message, detail };
  }

  /** A scan without findings: stopped, unreadable (refused whatever onError says), or failed (onError). */
  private notScanned(s: Extract<Scanned, { ok: false }>, commit: string, toplevel: string, live: string, target: 'new' | 'live', path: string): ScanVerdict {
    if (s.stopped) return { verdict: 'stopped' };
    if (!s.unreadable) return this.scanFailed(commit, toplevel, live, target, path, s.error);
    this.o.logger.event('vulnerabilities.unreadable', { commit, target, path, error: s.error });
    const message = `the vulnerability scan of the ${target} system ran, but its report cannot be read: ${s.error}; not deployed (an unread report may list what the gate stops), not retried until a newer commit or pullnix-ctl retry`;
    const scan = this.record(commit, toplevel, live, 'refused', { new: [], fixed: [], allowed: [] }, s.error);
    return { verdict: 'refuse', scan, message, detail: s.error };
  }

  private scanFailed(commit: string, toplevel: string, live: string | null, target: 'new' | 'live', path: string, error: string): ScanVerdict {
    const { onError } = this.o.settings;
    this.o.logger.event('vulnerabilities.scan_failed', { commit, target, path, error, on_error: onError });
    const empty = { new: [], fixed: [], allowed: [] };
    if (onError === 'allow') return { verdict: 'deploy', scan: this.record(commit, toplevel, live, 'error-allowed', empty, error) };
    const message = `the vulnerability scan of the ${target === 'new' ? 'new' : 'live'} system failed: ${error}; not deployed now, tried again later (gates.vulnerabilities.onError = refuse)`;
    return { verdict: 'retry', scan: this.record(commit, toplevel, live, 'error-refused', empty, error), message };
  }

  /** One vulnix run, bounded by what is left of the gate's time; a success is cached. */
  private async scan(path: string, deadline: number, signal?: AbortSignal): Promise<Scanned> {
    const { settings, runner, cacheDir } = this.o;
    const left = Math.floor(deadline - performance.now());
    if (left <= 0) return { ok: false, error: `gates.vulnerabilities.timeoutSec (${settings.timeoutSec} s) was used up before ${path} could be scanned`, stopped: false };
    // The report goes to a file, whole: the runner keeps only the last 256 KiB of an output.
    const reportFile = join(dirname(cacheDir), 'vulnix-report.json');
    rmSync(reportFile, { force: true });
    try {
      const result = await runner(vulnixArgv(settings, cacheDir, path), { timeoutMs: left, killAfterMs: 5000, stdoutFile: reportFile, ...(signal ? { signal } : {}) });
      if (result.aborted) return { ok: false, error: `${settings.command} was stopped`, stopped: signal?.aborted === true };
      if (result.timedOut) return { ok: false, error: `${settings.command} did not finish within gates.vulnerabilities.timeoutSec (${settings.timeoutSec} s) scanning ${path}`, stopped: false };
      if (result.spawnError || result.signal || result.exitCode === null) return this.answered(path, readVulnixResult(result));
      const report = readReport(reportFile);
      if (typeof report !== 'string') {
        if (result.exitCode === 0 || result.exitCode === 2) return { ok: false, error: `${settings.command} exited ${result.exitCode} after a scan, but ${report.error}`, stopped: false, unreadable: true };
        return { ok: false, error: `${report.error} (${describeFailure(result)})`, stopped: false };
      }
      return this.answered(path, readVulnixResult({ ...result, stdout: report }));
    } finally {
      rmSync(reportFile, { force: true });
    }
  }

  private answered(path: string, answer: VulnixAnswer): Scanned {
    if (!answer.ok) return { ok: false, error: answer.error, stopped: false, ...(answer.unreadable ? { unreadable: true as const } : {}) };
    this.remember(path, answer.findings);
    return answer;
  }

  private cached(path: string): VulnerabilityFinding[] | null {
    const entry = this.o.memory.vulnerabilities?.scans.find((s) => s.path === path);
    if (!entry) return null;
    const age = this.o.now() - Date.parse(entry.at);
    return age >= 0 && age < SCAN_CACHE_MAX_AGE_MS ? entry.findings : null;
  }

  private remember(path: string, findings: VulnerabilityFinding[]): void {
    const state = (this.o.memory.vulnerabilities ??= { last: null, scans: [] });
    state.scans = [...state.scans.filter((s) => s.path !== path), { path, at: new Date(this.o.now()).toISOString(), findings }].slice(-SCAN_CACHE_SIZE);
    this.o.save();
  }

  private record(commit: string, toplevel: string, live: string | null, decision: VulnerabilityDecision, c: Comparison, error: string | null): VulnerabilityScan {
    const scan: VulnerabilityScan = {
      commit,
      toplevel,
      liveSystem: live,
      at: new Date(this.o.now()).toISOString(),
      decision,
      minSeverity: this.o.settings.minSeverity,
      new: c.new.slice(0, LIST_LIMIT),
      fixed: c.fixed.slice(0, LIST_LIMIT),
      allowed: c.allowed.slice(0, LIST_LIMIT),
      counts: { new: c.new.length, fixed: c.fixed.length, allowed: c.allowed.length },
      error: error === null ? null : error.slice(0, 4000),
    };
    const state = (this.o.memory.vulnerabilities ??= { last: null, scans: [] });
    state.last = scan;
    this.o.save();
    return scan;
  }
}

/** The report vulnix wrote, whole; or why it cannot be read (missing: vulnix did not start; too large). */
function readReport(file: string): string | { error: string } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    return { error: `its report ${file} cannot be opened: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_REPORT_BYTES) return { error: `its report is ${size} bytes, over the ${MAX_REPORT_BYTES} read` };
    const buffer = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buffer, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buffer.subarray(0, got).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
