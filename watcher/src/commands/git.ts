/**
 * The watcher's git: one question to the remote (`ls-remote`) and, when the head moved, a fetch
 * of that one branch into the watcher's own checkout. Everything through simple-git with the
 * configured credentials (GIT_SSH_COMMAND from shared's gitEnvironment), never a shell.
 */
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { SimpleGit, SimpleGitOptions } from 'simple-git';
import { isCommit, reasonLines, type Logger } from '@pullnix/shared';
import type { CommitDescription } from '../memory.ts';

/** What the poll cycle needs from git; tests may substitute a counting or failing one. */
export interface GitOps {
  /** The branch head on the remote; null when the branch does not exist there. */
  lsRemote(signal?: AbortSignal): Promise<string | null>;
  /** Fetch the branch into the checkout (created on first use). */
  fetch(signal?: AbortSignal): Promise<void>;
  /** false when the checkout does not hold the commit; throws when git cannot tell (an I/O or object error). */
  hasCommit(commit: string): Promise<boolean>;
  /** true when `ancestor` is reachable from `descendant` (both must be in the checkout); throws when git fails. */
  isAncestor(ancestor: string, descendant: string): Promise<boolean>;
  /** Detached, forced checkout of the commit, then remove everything untracked or ignored. */
  checkout(commit: string, signal?: AbortSignal): Promise<void>;
  describe(commit: string): Promise<CommitDescription | null>;
  /**
   * Drop a fetched range that was refused: the tracking ref goes back to `keep` (a commit already
   * trusted, e.g. the deployed one) or away, and every object no longer reachable is deleted.
   */
  discard(keep: string | null, signal?: AbortSignal): Promise<void>;
}

export interface GitCheckoutOptions {
  url: string;
  branch: string;
  /** The watcher's checkout directory. */
  dir: string;
  /** Environment additions for every git command (gitEnvironment(config)). */
  env: Record<string, string>;
  logger: Logger;
  /** ls-remote: killed when it prints nothing for this long. */
  networkTimeoutMs?: number;
  /**
   * fetch: stopped when it prints nothing, not even progress, for this long (repository.fetchTimeoutSec).
   * An inactivity limit, not a limit on the whole fetch: a large first fetch that keeps moving completes.
   */
  fetchTimeoutMs?: number;
}

/** repository.fetchTimeoutSec's default, in ms (the schema holds the same default). */
export const DEFAULT_FETCH_TIMEOUT_MS = 600_000;

/** `git gc` after a refused range is stopped when it prints nothing for this long. */
const DISCARD_TIMEOUT_MS = 600_000;

/** Where the fetched branch is kept in the checkout; a name no one else writes. */
export const TRACKING_REF_PREFIX = 'refs/pullnix/';

export class GitCheckout implements GitOps {
  private readonly options: GitCheckoutOptions;
  private readonly env: Record<string, string>;
  private verified = false;
  private parentReady = false;
  private readonly cache = new WeakMap<AbortSignal, Map<string, SimpleGit>>();
  private readonly unsignalled = new Map<string, SimpleGit>();

  constructor(options: GitCheckoutOptions) {
    if (options.url.startsWith('-')) throw new Error(`repository.url ${JSON.stringify(options.url)} must not start with "-"`);
    this.options = options;
    // simple-git's env() replaces the whole environment, and simple-git refuses to run with
    // variables that can make git run programs (EDITOR, PAGER, GIT_ASKPASS, ...). Pass on only
    // what git needs to find itself and reach a remote, then our own credentials.
    this.env = { ...passThroughEnv(process.env), ...options.env };
  }

  get dir(): string {
    return this.options.dir;
  }

  async lsRemote(signal?: AbortSignal): Promise<string | null> {
    const ref = `refs/heads/${this.options.branch}`;
    const out = await this.run(this.parentDir(), ['ls-remote', '--', this.options.url, ref], signal, this.options.networkTimeoutMs ?? 120_000);
    return parseLsRemote(out, ref);
  }

  async fetch(signal?: AbortSignal): Promise<void> {
    await this.ensureRepository();
    const { branch, url } = this.options;
    // --progress even without a terminal: the progress lines are what resets the inactivity
    // timer (with --quiet git prints nothing until the end, and the limit cut long fetches off).
    // fetch.unpackLimit=1: a pack of fewer than fetch.unpackLimit objects (default 100) goes to
    // unpack-objects, which prints nothing while the pack comes in (git's fetch-pack.c, get_pack:
    // `if (ntohl(header.hdr_entries) < unpack_limit) do_keep = 0;` chooses unpack-objects over
    // index-pack), so a small but slow fetch was cut off at the limit as a whole. index-pack redraws
    // "Receiving objects" with the throughput every second while bytes arrive, and keeps the
    // objects as one pack.
    await this.run(this.options.dir, ['-c', 'fetch.unpackLimit=1', 'fetch', '--no-tags', '--progress', '--', url, `+refs/heads/${branch}:${TRACKING_REF_PREFIX}${branch}`], signal, this.options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS);
  }

  async hasCommit(commit: string): Promise<boolean> {
    assertCommit(commit);
    if (!existsSync(join(this.options.dir, '.git'))) return false;
    // --verify --quiet: a commit that is not there exits 1 silently (simple-git answers ""); an
    // error of git's (a corrupt or unreadable object, I/O) is thrown, never taken for "absent".
    const out = await this.run(this.options.dir, ['rev-parse', '--verify', '--quiet', `${commit}^{commit}`]);
    return out.trim() === commit;
  }

  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    assertCommit(ancestor);
    assertCommit(descendant);
    // Empty output: nothing reachable from `ancestor` is missing from `descendant`'s history.
    const out = await this.run(this.options.dir, ['rev-list', '--max-count=1', ancestor, `^${descendant}`, '--']);
    return out.trim() === '';
  }

  async checkout(commit: string, signal?: AbortSignal): Promise<void> {
    assertCommit(commit);
    await this.run(this.options.dir, ['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--force', '--detach', commit, '--'], signal);
    await this.run(this.options.dir, ['clean', '-ffdxq'], signal);
  }

  async describe(commit: string): Promise<CommitDescription | null> {
    assertCommit(commit);
    try {
      const out = await this.run(this.options.dir, ['log', '-1', '--format=%s%x00%cI', commit, '--']);
      const [subject, time] = out.replace(/\n$/, '').split('\0');
      return { subject: subject ?? null, time: time || null };
    } catch {
      return null;
    }
  }

  async discard(keep: string | null, signal?: AbortSignal): Promise<void> {
    const ref = `${TRACKING_REF_PREFIX}${this.options.branch}`;
    if (keep !== null && (await this.hasCommit(keep))) await this.run(this.options.dir, ['update-ref', '--no-deref', ref, keep], signal);
    else await this.run(this.options.dir, ['update-ref', '--no-deref', '-d', ref], signal).catch(() => undefined);
    // gc with --prune=now: repack drops the unreachable objects it would otherwise keep two weeks.
    await this.run(this.options.dir, ['-c', 'gc.reflogExpire=now', '-c', 'gc.reflogExpireUnreachable=now', 'gc', '--quiet', '--prune=now'], signal, DISCARD_TIMEOUT_MS);
  }

  /**
   * Create the checkout on first use; a directory that is not a working git repository any more
   * is set aside (renamed, logged) and a fresh one made: the watcher must never be stuck on it.
   */
  private async ensureRepository(): Promise<void> {
    if (this.verified) return;
    const { dir, logger } = this.options;
    if (existsSync(dir)) {
      let ok = false;
      try {
        ok = (await this.run(dir, ['rev-parse', '--is-inside-work-tree'])).trim() === 'true' && existsSync(join(dir, '.git'));
      } catch {
        ok = false;
      }
      if (!ok) {
        const aside = `${dir}.broken-${new Date().toISOString().replaceAll(':', '')}`;
        renameSync(dir, aside);
        logger.event('state.corrupt', { file: dir, moved_to: aside, error: 'the checkout is not a git working tree' });
      }
    }
    if (!existsSync(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      await this.run(dir, ['init', '--quiet']);
    }
    this.verified = true;
  }

  /** Every git command: through simple-git, as an argv array, logged before and after (debug). */
  private async run(baseDir: string, args: string[], signal?: AbortSignal, timeoutMs?: number): Promise<string> {
    const { logger } = this.options;
    logger.event('command.run', { argv: ['git', ...args].map(redactUrl).join(' ') });
    const started = performance.now();
    try {
      const out = await this.git(baseDir, signal, timeoutMs).raw(args);
      logger.event('command.done', { cmd: 'git', exit: 0, ms: Math.round(performance.now() - started) });
      return out;
    } catch (caught) {
      const error = timeoutMs && isInactivityTimeout(caught) ? inactivityError(args[args[0] === '-c' ? 2 : 0]!, timeoutMs, caught) : caught;
      const exit = (error as { exitCode?: unknown }).exitCode;
      logger.event('command.done', { cmd: 'git', exit: typeof exit === 'number' ? exit : null, ms: Math.round(performance.now() - started), error: describeGitError(error) });
      throw error;
    }
  }

  private parentDir(): string {
    const parent = join(this.options.dir, '..');
    if (!this.parentReady) {
      mkdirSync(parent, { recursive: true });
      this.parentReady = true;
    }
    return parent;
  }

  /**
   * simple-git instances are reused per (directory, timeout, signal): the poll loop passes the
   * same signal every time, so a no-op poll does not rebuild one (it is on the benchmark's path).
   */
  private git(baseDir: string, signal?: AbortSignal, timeoutMs?: number): SimpleGit {
    const bySignal = signal ? (this.cache.get(signal) ?? new Map<string, SimpleGit>()) : this.unsignalled;
    if (signal && !this.cache.has(signal)) this.cache.set(signal, bySignal);
    const key = `${timeoutMs ?? 0}:${baseDir}`;
    let git = bySignal.get(key);
    if (!git) {
      git = this.create(baseDir, signal, timeoutMs);
      bySignal.set(key, git);
    }
    return git;
  }

  private create(baseDir: string, signal?: AbortSignal, timeoutMs?: number): SimpleGit {
    return simpleGit({
      baseDir,
      // GIT_SSH_COMMAND comes from our own configuration (deploy key, pinned known_hosts), not from a user.
      unsafe: { allowUnsafeSshCommand: true },
      ...(signal ? { abort: signal } : {}),
      ...(timeoutMs ? { timeout: { block: timeoutMs } } : {}),
    }).env(this.env);
  }
}

/**
 * simple-git, loaded on the first git command, and with require(), not import. Imported from an
 * ES module, a CommonJS package is first scanned by Node's CommonJS export lexer, and scanning
 * simple-git's dependencies made V8 optimise that lexer: ~10 MiB of compiler memory that the
 * watcher then kept for its whole life, more than simple-git itself (~1 MiB). require() needs no
 * scan (docs/benchmarks.md, the idle machine).
 */
let simpleGitFactory: ((options: Partial<SimpleGitOptions>) => SimpleGit) | undefined;

function simpleGit(options: Partial<SimpleGitOptions>): SimpleGit {
  simpleGitFactory ??= (createRequire(import.meta.url)('simple-git') as typeof import('simple-git')).simpleGit;
  return simpleGitFactory(options);
}

/** The commit of exactly `ref` in ls-remote output (a pattern also matches longer refs ending in it). */
export function parseLsRemote(output: string, ref: string): string | null {
  for (const line of output.split('\n')) {
    const [commit, name] = line.split('\t');
    if (name === ref && commit !== undefined && isCommit(commit)) return commit;
  }
  return null;
}

/** simple-git's timeout plugin stopped the command: no output for the block time. */
function isInactivityTimeout(error: unknown): boolean {
  return error instanceof Error && (error as { plugin?: unknown }).plugin === 'timeout';
}

function inactivityError(command: string, timeoutMs: number, cause: unknown): Error {
  const key = command === 'fetch' ? ' (repository.fetchTimeoutSec, reset by every line of progress)' : '';
  return new Error(`git ${command} printed nothing for ${Math.round(timeoutMs / 1000)} s and was stopped${key}`, { cause });
}

/** The lines of a git error that say why (no progress, no boilerplate), for logs and reports. */
export function describeGitError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return reasonLines(message).split('\n').join(' / ') || 'git failed';
}

function assertCommit(commit: string): void {
  if (!isCommit(commit)) throw new Error(`not a commit id: ${JSON.stringify(commit)}`);
}

/** The variables git may see from the watcher's own environment. */
export const GIT_ENV_PASS_THROUGH = [
  'PATH',
  'HOME',
  'LANG',
  'LC_ALL',
  'TZ',
  'TMPDIR',
  // https remotes: where the CA bundle is (NixOS sets these in the unit's environment).
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'NIX_SSL_CERT_FILE',
  'GIT_SSL_CAINFO',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
] as const;

export function passThroughEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of GIT_ENV_PASS_THROUGH) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** Credentials in an https URL never reach a log line. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@]*)@/i, (_m, scheme: string, userinfo: string) => `${scheme}${userinfo.includes(':') ? `${userinfo.split(':')[0]}:***` : userinfo}@`);
}
