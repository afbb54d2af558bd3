/**
 * The prebuilt source (source.mode "prebuilt", docs/prebuilt.md, issue 23): the system of a
 * commit is not evaluated or built here. CI built it, pushed its closure to a binary cache signed
 * with its own key, and committed a manifest (`hosts/<host>.json`: toplevel, sourceCommit) signed
 * with a builder key. This source checks, in this order, and names the first failure:
 *
 *   1. the manifest commit (the branch head) is signed by a builder key (trust.allowedSigners
 *      with role builder); the range rules of trust.mode were applied before, by the trust stage,
 *      with the keys of both roles (prebuiltTrustRole);
 *   2. with source.requireSignedSource: sourceCommit is in the repository, signed by a human key,
 *      and descends from the deployed sourceCommit (no downgrade through an old manifest);
 *   3. the cache has the whole closure (else: wait for the next poll, never a failed commit), every
 *      path of it carries a signature by a configured key name (a diagnostic before anything is
 *      downloaded; the check that counts is Nix's own, at the fetch);
 *   4. the closure fits the free space of the Nix store with source.freeSpaceMarginMiB to spare;
 *   5. the fetch, through the nix-daemon, which checks every narinfo signature and NAR hash itself;
 *   6. the closure's embedded revision (nixos-version's configurationRevision) is sourceCommit.
 *
 * A refusal is the commit's (remembered like a failed build); a cache that lacks the paths yet
 * is a wait; a cache that is down, a daemon that fails or a full disk are the machine's (retried
 * with back-off). A failed fetch leaves no GC root: the root is made by Nix only once the whole
 * closure is valid, and a root of a refused closure is removed.
 */
import { rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { isCommit, manifestPath, ManifestError, parseManifest, TrustGate, type Config, type Logger, type Runner, type TrustResult } from '@pullnix/shared';
import { readCommitFile } from '../commands/git-cat-file.ts';
import { cacheClosure, type CachePath } from '../commands/nix-path-info.ts';
import { missingLocally } from '../commands/nix-store-check-validity.ts';
import { realise, realiseFailureOf } from '../commands/nix-store-realise.ts';
import { configurationRevision } from '../commands/nixos-version.ts';
import { faultOf } from '../fault.ts';
import { rememberProvenance } from '../memory.ts';
import type { WatcherContext } from './context.ts';
import { pruneGcRoots } from './source-build.ts';
import type { Realised, SystemSource } from './source.ts';

/** Why a prebuilt system was not taken (status, journal, history name it). */
export type PrebuiltReason =
  | 'manifest-missing' // the commit has no manifest for this host
  | 'manifest-invalid' // the manifest is not {toplevel, sourceCommit}
  | 'manifest-untrusted' // the manifest commit is not signed by a builder key
  | 'source-missing' // requireSignedSource: sourceCommit is not in the repository
  | 'source-untrusted' // requireSignedSource: sourceCommit is not signed by a human key
  | 'source-older' // requireSignedSource: sourceCommit does not descend from the deployed one
  | 'cache-missing' // the cache does not have the closure yet (wait)
  | 'cache-unreachable' // the cache or the nix-daemon did not answer (retried)
  | 'unsigned-path' // a path of the closure carries no signature at all
  | 'unknown-cache-key' // a path is signed, but by no key of source.publicKeys
  | 'bad-signature' // Nix refused a path's signature (a narinfo edited after signing, a forged signature)
  | 'nar-mismatch' // Nix refused a NAR that is not the one its narinfo describes
  | 'no-space' // the closure does not fit the free space of the store (retried)
  | 'fetch-failed' // the fetch failed for another reason
  | 'revision-mismatch'; // the closure's configurationRevision is not sourceCommit

/** wait: look again at the next poll (no back-off). retry: the machine's fault (back-off). refuse: the commit's. */
export type PrebuiltVerdict = 'wait' | 'retry' | 'refuse';

const VERDICTS: Record<PrebuiltReason, PrebuiltVerdict> = {
  'manifest-missing': 'refuse',
  'manifest-invalid': 'refuse',
  'manifest-untrusted': 'refuse',
  'source-missing': 'refuse',
  'source-untrusted': 'refuse',
  'source-older': 'refuse',
  'cache-missing': 'wait',
  'cache-unreachable': 'retry',
  'unsigned-path': 'refuse',
  'unknown-cache-key': 'refuse',
  'bad-signature': 'refuse',
  'nar-mismatch': 'refuse',
  'no-space': 'retry',
  'fetch-failed': 'refuse',
  'revision-mismatch': 'refuse',
};

/** Where a prebuilt system came from: `pullnix-ctl status`'s source line. */
export interface Provenance {
  toplevel: string;
  sourceCommit: string;
  manifestCommit: string;
  /** The builder key's principal that signed the manifest commit (null with trust.mode off). */
  signer: string | null;
  /** The name of the configured cache key that signed the toplevel. */
  cacheKey: string | null;
  cache: string;
}

export type PrebuiltResult =
  | { ok: true; toplevel: string; outLink: string; provenance: Provenance; downloadBytes: number; durationMs: number }
  | { ok: false; stopped: boolean; verdict: PrebuiltVerdict; reason: PrebuiltReason; message: string; durationMs: number };

export interface PrebuiltSourceOptions {
  config: Config;
  runner: Runner;
  logger: Logger;
  /** The watcher's checkout's git directory (the fetched objects). */
  gitDir: string;
  gcrootsDir: string;
  host: string;
  /** Ancestry in the checkout (the watcher's GitOps). */
  git: { hasCommit(commit: string): Promise<boolean>; isAncestor(ancestor: string, descendant: string): Promise<boolean> };
  /** The trust gates' directories: `<dir>/builder`, `<dir>/source` (the watcher's `<stateDir>/trust-prebuilt`). */
  trustDir: string;
  now?: () => number;
  /** Free bytes of the file system holding the store (default: statfs of paths.storeDir). */
  freeBytes?: () => number;
}

/** The trust stage's role in prebuilt mode: a branch's range holds humans' and CI's commits. */
export function prebuiltTrustRole(config: Config): 'human' | 'any' {
  return config.source.mode === 'prebuilt' ? 'any' : 'human';
}

export class PrebuiltSource {
  private readonly options: PrebuiltSourceOptions;
  private readonly builderGate: TrustGate;
  private readonly sourceGate: TrustGate;
  private readonly now: () => number;

  constructor(options: PrebuiltSourceOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    const { config, runner, gitDir, trustDir } = options;
    const now = this.now;
    // Mode head for both: the manifest commit itself, sourceCommit itself (its range is the humans' history).
    const head = { ...config.trust, mode: 'head' as const };
    this.builderGate = new TrustGate({ trust: head, runner, gitDir, dir: join(trustDir, 'builder'), role: 'builder', now });
    this.sourceGate = new TrustGate({ trust: head, runner, gitDir, dir: join(trustDir, 'source'), role: 'human', now });
  }

  get manifestPath(): string {
    return manifestPath(this.options.config.source, this.options.host);
  }

  /** The manifest at `commit`, or null (no manifest there, or not a valid one). */
  async manifestAt(commit: string, signal?: AbortSignal): Promise<{ toplevel: string; sourceCommit: string } | null> {
    const text = await readCommitFile(this.options.runner, this.options.gitDir, commit, this.manifestPath, signal);
    if (text === null) return null;
    try {
      return parseManifest(text, this.manifestPath, this.options.config.paths.storeDir);
    } catch {
      return null;
    }
  }

  /**
   * The system of manifest commit `head`, fetched and checked. `deployed`: the deployed commit
   * (a manifest commit, or a commit of build mode), the base of the no-downgrade rule.
   */
  async obtain(head: string, deployed: string | null, signal?: AbortSignal): Promise<PrebuiltResult> {
    const started = this.now();
    const { config, logger } = this.options;
    const log = logger.child({ commit: head });
    const refuse = (reason: PrebuiltReason, message: string, stopped = false): PrebuiltResult => {
      const verdict = VERDICTS[reason];
      if (!stopped && verdict === 'wait') log.event('prebuilt.waiting', { reason, error: message });
      else if (!stopped && verdict === 'retry') log.event('prebuilt.deferred', { reason, error: message });
      else if (!stopped) log.event('prebuilt.refused', { reason, error: message });
      return { ok: false, stopped, verdict, reason, message, durationMs: this.now() - started };
    };
    const where = `${this.manifestPath} at ${head}`;

    // 1. The manifest commit, signed by a builder key.
    let signer: string | null = null;
    if (config.trust.mode !== 'off') {
      const verdict: TrustResult = await this.builderGate.check(head, [], signal);
      if (!verdict.ok) return refuse('manifest-untrusted', `the manifest commit ${head} is not signed by a builder key: ${verdict.reason}: ${verdict.message}`);
      signer = verdict.signers[0] ?? null;
    }
    const text = await readCommitFile(this.options.runner, this.options.gitDir, head, this.manifestPath, signal);
    if (text === null) return refuse('manifest-missing', `${where}: no such file; CI writes this host's manifest there (source.manifest)`);
    let manifest;
    try {
      manifest = parseManifest(text, where, config.paths.storeDir);
    } catch (error) {
      if (error instanceof ManifestError) return refuse('manifest-invalid', error.message);
      throw error;
    }
    const { toplevel, sourceCommit } = manifest;
    log.event('prebuilt.manifest', { toplevel, source_commit: sourceCommit, signer: signer ?? undefined });

    // 2. sourceCommit: signed by a human, no older than the deployed one.
    if (config.source.requireSignedSource) {
      const problem = await this.checkSource(sourceCommit, deployed, signal);
      if (problem) return refuse(problem.reason, problem.message);
    }

    // 3. The closure, as the caches describe it: the first cache that has it all.
    let found: { cache: string; paths: CachePath[] } | null = null;
    const misses: string[] = [];
    const downs: string[] = [];
    for (const cache of config.source.caches) {
      const r = await cacheClosure(this.options.runner, cache, toplevel, { timeoutMs: 300_000, ...(signal ? { signal } : {}) });
      if (signal?.aborted) return refuse('fetch-failed', 'stopped', true);
      if (r.ok) {
        found = { cache, paths: r.paths };
        break;
      }
      (r.missing ? misses : downs).push(r.missing ? r.error : `${cache}: ${r.error}${r.stderr ? `: ${r.stderr}` : ''}`);
    }
    if (!found) {
      if (downs.length > 0 && misses.length === 0) return refuse('cache-unreachable', `no cache answered for ${toplevel}: ${downs.join('; ')}`);
      return refuse('cache-missing', `${toplevel} is not (all) in the cache yet: ${[...misses, ...downs].join('; ')}; looked for again at the next poll`);
    }
    const keyNames = config.source.publicKeys.map((k) => k.slice(0, k.indexOf(':')));
    for (const p of found.paths) {
      if (p.ca) continue; // content-addressed: Nix checks its content, no signature needed
      if (p.signatures.length === 0) return refuse('unsigned-path', `${p.path} in ${found.cache} carries no signature; Nix would refuse it (CI: nix store sign -r)`);
      if (!p.signatures.some((s) => keyNames.includes(s.slice(0, s.indexOf(':'))))) {
        return refuse('unknown-cache-key', `${p.path} in ${found.cache} is signed by ${p.signatures.map((s) => s.slice(0, s.indexOf(':'))).join(', ')}, none of source.publicKeys (${keyNames.join(', ')})`);
      }
    }
    const top = found.paths.find((p) => p.path === toplevel);
    const cacheKey = top?.signatures.map((s) => s.slice(0, s.indexOf(':'))).find((n) => keyNames.includes(n)) ?? null;

    // 4. Room in the store: the unpacked NARs and the compressed downloads of what is missing here.
    let missing: string[];
    try {
      missing = await missingLocally(this.options.runner, found.paths.map((p) => p.path), signal);
    } catch (error) {
      return refuse('cache-unreachable', `the nix-daemon could not tell which paths are missing: ${(error as Error).message}`);
    }
    const toFetch = found.paths.filter((p) => missing.includes(p.path));
    const downloadBytes = toFetch.reduce((sum, p) => sum + p.downloadSize, 0);
    const need = toFetch.reduce((sum, p) => sum + p.narSize, 0) + downloadBytes;
    const margin = config.source.freeSpaceMarginMiB * 1024 * 1024;
    const free = this.freeBytes();
    if (need + margin > free) {
      return refuse('no-space', `the closure needs ${mib(need)} MiB (${toFetch.length} paths: unpacked plus downloads) and source.freeSpaceMarginMiB ${config.source.freeSpaceMarginMiB} MiB to spare, but ${config.paths.storeDir} has ${mib(free)} MiB free; retried`);
    }

    // 5. The fetch, through the daemon: Nix checks every signature and hash.
    const outLink = join(this.options.gcrootsDir, head);
    rmSync(outLink, { force: true });
    const fetchStarted = this.now();
    const r = await realise(this.options.runner, toplevel, outLink, [found.cache], { timeoutMs: config.build.timeoutSec * 1000, ...(signal ? { signal } : {}) });
    if (r.aborted) {
      rmSync(outLink, { force: true });
      return refuse('fetch-failed', 'stopped', true);
    }
    if (r.exitCode !== 0) {
      rmSync(outLink, { force: true });
      const failure = realiseFailureOf(r.stderr);
      if (failure.kind === 'untrusted-signature') return refuse('bad-signature', `Nix refused ${toplevel}'s closure from ${found.cache}: ${failure.line}`);
      if (failure.kind === 'nar-mismatch') return refuse('nar-mismatch', `Nix refused ${toplevel}'s closure from ${found.cache}: ${failure.line}`);
      const fault = faultOf(r);
      if (fault.fault === 'machine') return refuse(/No space left|Disk quota/.test(fault.why) ? 'no-space' : 'cache-unreachable', `fetching ${toplevel} from ${found.cache} failed for a reason of the machine's (${fault.why}); retried: ${failure.line}`);
      return refuse('fetch-failed', `fetching ${toplevel} from ${found.cache} failed: ${failure.line}`);
    }
    log.event('prebuilt.fetched', { toplevel, cache: found.cache, paths: toFetch.length, download_bytes: downloadBytes, ms: this.now() - fetchStarted });

    // 6. The embedded revision.
    let revision: string | null;
    try {
      revision = await configurationRevision(this.options.runner, toplevel, signal);
    } catch (error) {
      rmSync(outLink, { force: true });
      return refuse('revision-mismatch', `the revision of ${toplevel} cannot be read: ${(error as Error).message}`);
    }
    if (revision !== sourceCommit) {
      rmSync(outLink, { force: true });
      return refuse('revision-mismatch', `${toplevel} was built from ${revision === null ? 'no recorded revision (system.configurationRevision is null)' : `revision ${revision}`}, but the manifest says sourceCommit ${sourceCommit}`);
    }
    const provenance: Provenance = { toplevel, sourceCommit, manifestCommit: head, signer, cacheKey, cache: found.cache };
    return { ok: true, toplevel, outLink, provenance, downloadBytes, durationMs: this.now() - started };
  }

  private async checkSource(sourceCommit: string, deployed: string | null, signal?: AbortSignal): Promise<{ reason: PrebuiltReason; message: string } | null> {
    if (!(await this.options.git.hasCommit(sourceCommit))) {
      return { reason: 'source-missing', message: `sourceCommit ${sourceCommit} is not in ${this.options.config.repository.branch} (source.requireSignedSource: CI must build a commit of the branch)` };
    }
    const verdict = await this.sourceGate.check(sourceCommit, [], signal);
    if (!verdict.ok) return { reason: 'source-untrusted', message: `sourceCommit ${sourceCommit} is not signed by a human key: ${verdict.reason}: ${verdict.message}` };
    if (deployed === null) return null;
    // The deployed system's source: its manifest's sourceCommit, or the deployed commit itself (build mode).
    const base = (await this.manifestAt(deployed, signal))?.sourceCommit ?? deployed;
    if (!isCommit(base) || !(await this.options.git.hasCommit(base))) return null;
    if (base === sourceCommit) return null;
    if (!(await this.options.git.isAncestor(base, sourceCommit))) {
      return { reason: 'source-older', message: `sourceCommit ${sourceCommit} does not descend from the deployed system's source ${base}: an older or unrelated configuration (no downgrade through an old manifest)` };
    }
    return null;
  }

  private freeBytes(): number {
    if (this.options.freeBytes) return this.options.freeBytes();
    const s = statfsSync(this.options.config.paths.storeDir);
    return Number(s.bavail) * Number(s.bsize);
  }
}

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

/** The prebuilt source behind the pipeline's SystemSource (source.ts's createSource). */
export class PrebuiltSystemSource implements SystemSource {
  readonly mode = 'prebuilt' as const;
  private readonly c: WatcherContext;
  private readonly source: PrebuiltSource;

  constructor(context: WatcherContext) {
    this.c = context;
    this.source = new PrebuiltSource({
      config: context.config,
      runner: context.runner,
      logger: context.logger,
      gitDir: join(context.checkoutDir, '.git'),
      gcrootsDir: context.gcrootsDir,
      host: context.host,
      git: context.git,
      trustDir: join(context.config.watcher.stateDir, 'trust-prebuilt'),
      now: () => context.clock.now(),
    });
  }

  async realise(commit: string, deployed: string | null, signal: AbortSignal): Promise<Realised> {
    const { config, logger } = this.c;
    const r = await this.source.obtain(commit, deployed, signal);
    if (!r.ok) {
      return {
        ok: false,
        stopped: r.stopped,
        fault: r.verdict === 'retry' ? 'machine' : 'commit',
        faultReason: r.reason,
        error: r.message,
        logTail: '',
        durationMs: r.durationMs,
        waiting: r.verdict === 'wait',
        reason: r.reason,
      };
    }
    const { toplevel, sourceCommit, manifestCommit, signer, cacheKey } = r.provenance;
    rememberProvenance(this.c.memory, { toplevel, sourceCommit, manifestCommit, signer, cacheKey });
    this.c.save();
    const removed = pruneGcRoots(this.c.gcrootsDir, config.build.keepGcRoots, [commit, deployed]);
    if (removed.length > 0) logger.event('gcroots.pruned', { removed, kept: config.build.keepGcRoots });
    return { ok: true, toplevel: r.toplevel, durationMs: r.durationMs };
  }
}
