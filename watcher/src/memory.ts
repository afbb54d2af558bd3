/**
 * The watcher's memory, `<stateDir>/watcher.json`: the last branch head it handled, the commits
 * whose build failed, and the subjects of commits it has seen (so a no-op poll after a restart
 * can still describe the head without running git). Written atomically after every change, so
 * the watcher can be killed at any moment. A corrupt file is reported and set aside, never
 * silently reset.
 */
import { readFileSync, renameSync } from 'node:fs';
import type { PhasedSighting } from './rings/phased.ts';
import { isCommit, writeFileAtomic, type Logger, type PrebuiltProvenance, type RefusedHead, type VulnerabilityFinding, type VulnerabilityScan } from '@pullnix/shared';

/** How a head's handling ended; a handled head is not looked at again until the branch moves. */
export type HandledResult = 'deployed' | 'deploy-failed' | 'build-failed' | 'not-descendant' | 'known-bad' | 'refused' | 'untrusted' | 'vulnerable' | 'gate-refused';

export interface HandledHead {
  commit: string;
  result: HandledResult;
  at: string;
  detail: string | null;
}

export interface BuildFailure {
  commit: string;
  at: string;
  /** One line: why it failed (nix's last lines included). */
  error: string;
  /** The last ~30 lines of the build's stderr (a vulnerability refusal: one line per new CVE). */
  logTail: string;
  /** What failed: the build (also when absent, as in older files), or the name of the gate that refused it (pipeline/gates.ts, e.g. `vulnerabilities`). */
  kind?: string;
}

/** The vulnerability gate's memory (watcher/src/pipeline/gate-vulnerabilities.ts). */
export interface VulnerabilityMemory {
  /** Its last decision, reported in status. */
  last: VulnerabilityScan | null;
  /** vulnix's findings per scanned store path, oldest first. */
  scans: { path: string; at: string; findings: VulnerabilityFinding[] }[];
}

export interface CommitDescription {
  subject: string | null;
  time: string | null;
}

/** A head whose range failed the signature check (watcher/src/pipeline/trust.ts); shown in status. */
export interface TrustRefusal {
  head: string;
  /** The commit of the range that failed (null: the check could not start, e.g. a malformed key). */
  commit: string | null;
  reason: string;
  message: string;
  at: string;
  /** TrustGate.fingerprint of the configuration that refused it. */
  config: string;
}

export interface WatcherMemory {
  v: 1;
  lastHandled: HandledHead | null;
  failures: BuildFailure[];
  commits: Record<string, CommitDescription>;
  /** The last refused head, until a head passes the check or an operator retries it. */
  untrusted?: TrustRefusal | null;
  vulnerabilities?: VulnerabilityMemory;
  /** Phased start (ring.phases): when this host first saw its branch at the current head (watcher/src/rings/phased.ts). */
  phased?: PhasedSighting | null;
  /** source.mode prebuilt: where the systems of the last manifest commits came from, by manifest commit (status's source line). */
  prebuilt?: Record<string, PrebuiltProvenance>;
}

const MAX_PROVENANCES = 5;

/** Remember where the system of manifest commit `p.manifestCommit` came from (the newest few). */
export function rememberProvenance(memory: WatcherMemory, p: PrebuiltProvenance): void {
  const all = { ...(memory.prebuilt ?? {}) };
  delete all[p.manifestCommit];
  all[p.manifestCommit] = p;
  const keys = Object.keys(all);
  for (const key of keys.slice(0, Math.max(0, keys.length - MAX_PROVENANCES))) delete all[key];
  memory.prebuilt = all;
}

/** At most this many failures are remembered (the report's schema allows 100). */
export const MAX_FAILURES = 50;
const MAX_DESCRIPTIONS = 20;

export function emptyMemory(): WatcherMemory {
  return { v: 1, lastHandled: null, failures: [], commits: {} };
}

export class MemoryStore {
  readonly path: string;
  private readonly logger: Logger;
  private readonly now: () => number;

  constructor(options: { path: string; logger: Logger; now?: () => number }) {
    this.path = options.path;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
  }

  /**
   * An unreadable file (EISDIR, EACCES, I/O error) is treated like a corrupt one: reported, set
   * aside where possible, and the watcher starts with an empty memory rather than crash-looping.
   * The executor's failure memory still stops it from redeploying what failed.
   */
  load(): WatcherMemory {
    let problem: Error;
    try {
      return parseMemory(readFileSync(this.path, 'utf8'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyMemory();
      problem = error as Error;
    }
    const aside = `${this.path}.corrupt-${new Date(this.now()).toISOString().replaceAll(':', '')}`;
    let movedTo: string | null = aside;
    try {
      renameSync(this.path, aside);
    } catch {
      movedTo = null;
    }
    this.logger.event('state.corrupt', { file: this.path, moved_to: movedTo, error: problem.message });
    return emptyMemory();
  }

  save(memory: WatcherMemory): void {
    writeFileAtomic(this.path, `${JSON.stringify(memory, null, 2)}\n`, { mode: 0o600 });
  }
}

/** Throws naming the first thing that is wrong; the caller sets the file aside. */
export function parseMemory(text: string): WatcherMemory {
  const data = JSON.parse(text) as Partial<WatcherMemory> | null;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('not a JSON object');
  if (data.v !== 1) throw new Error(`unknown version ${JSON.stringify(data.v)}`);
  const handled = data.lastHandled;
  if (handled !== null && (typeof handled !== 'object' || handled === undefined || typeof handled.commit !== 'string' || !isCommit(handled.commit) || typeof handled.result !== 'string')) {
    throw new Error('lastHandled is not {commit, result, at, detail}');
  }
  if (!Array.isArray(data.failures) || !data.failures.every((f) => typeof f === 'object' && f !== null && typeof f.commit === 'string' && isCommit(f.commit) && typeof f.error === 'string')) {
    throw new Error('failures is not a list of {commit, at, error, logTail}');
  }
  if (typeof data.commits !== 'object' || data.commits === null || Array.isArray(data.commits)) throw new Error('commits is not an object');
  const untrusted = data.untrusted ?? null;
  if (untrusted !== null && (typeof untrusted !== 'object' || typeof untrusted.head !== 'string' || !isCommit(untrusted.head) || typeof untrusted.message !== 'string')) {
    throw new Error('untrusted is not {head, commit, reason, message, at}');
  }
  const memory: WatcherMemory = { v: 1, lastHandled: handled, failures: data.failures, commits: data.commits, ...(untrusted ? { untrusted } : {}) };
  const vulns = data.vulnerabilities;
  if (vulns !== undefined) {
    if (typeof vulns !== 'object' || vulns === null || !Array.isArray(vulns.scans) || !vulns.scans.every((s) => typeof s === 'object' && s !== null && typeof s.path === 'string' && typeof s.at === 'string' && Array.isArray(s.findings))) {
      throw new Error('vulnerabilities is not {last, scans: [{path, at, findings}]}');
    }
    if (vulns.last !== null && (typeof vulns.last !== 'object' || typeof vulns.last.commit !== 'string' || typeof vulns.last.decision !== 'string')) throw new Error('vulnerabilities.last is not a scan');
    memory.vulnerabilities = vulns;
  }
  const phased = data.phased ?? null;
  if (phased !== null) {
    if (typeof phased !== 'object' || typeof phased.commit !== 'string' || !isCommit(phased.commit) || typeof phased.firstSeenAt !== 'string' || Number.isNaN(Date.parse(phased.firstSeenAt))) {
      throw new Error('phased is not {commit, firstSeenAt}');
    }
    memory.phased = phased;
  }
  const prebuilt = data.prebuilt;
  if (prebuilt !== undefined) {
    if (typeof prebuilt !== 'object' || prebuilt === null || Array.isArray(prebuilt) || !Object.entries(prebuilt).every(([k, p]) => isCommit(k) && typeof p === 'object' && p !== null && p.manifestCommit === k && typeof p.toplevel === 'string' && typeof p.sourceCommit === 'string')) {
      throw new Error('prebuilt is not {<manifest commit>: {toplevel, sourceCommit, manifestCommit, signer, cacheKey}}');
    }
    memory.prebuilt = prebuilt;
  }
  return memory;
}

export function rememberFailure(memory: WatcherMemory, failure: BuildFailure): void {
  memory.failures = [...memory.failures.filter((f) => f.commit !== failure.commit), failure].slice(-MAX_FAILURES);
}

/** Forget a commit's failure (operator `retry`); true when there was one or it was the handled head. */
export function forgetCommit(memory: WatcherMemory, commit: string): boolean {
  const before = memory.failures.length;
  memory.failures = memory.failures.filter((f) => f.commit !== commit);
  let changed = memory.failures.length !== before;
  // A refused range is known by its head and by the commit that failed: either one re-checks it.
  const refusal = memory.untrusted;
  if (refusal && (refusal.head === commit || refusal.commit === commit)) {
    if (memory.lastHandled?.commit === refusal.head) memory.lastHandled = null;
    memory.untrusted = null;
    changed = true;
  }
  if (memory.lastHandled?.commit === commit) {
    memory.lastHandled = null;
    changed = true;
  }
  return changed;
}

/**
 * The head as refused by the force-push guard, from the memory of the last handled head (so a
 * restarted watcher still says so); null when `head` is not the head that was refused.
 */
export function refusedHead(memory: WatcherMemory, head: string | null): RefusedHead | null {
  const handled = memory.lastHandled;
  if (head === null || handled?.commit !== head || handled.result !== 'not-descendant') return null;
  // detail is "deployed <commit>" (see the watcher's ancestry check).
  const deployed = /\b([0-9a-f]{64}|[0-9a-f]{40})\b/.exec(handled.detail ?? '')?.[1] ?? null;
  return { commit: head, reason: 'not-descendant', deployed, at: handled.at };
}

export function rememberDescription(memory: WatcherMemory, commit: string, description: CommitDescription): void {
  delete memory.commits[commit];
  memory.commits[commit] = description;
  const keys = Object.keys(memory.commits);
  for (const key of keys.slice(0, Math.max(0, keys.length - MAX_DESCRIPTIONS))) delete memory.commits[key];
}
