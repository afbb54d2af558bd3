/**
 * Real git remotes for tests: a bare repository in a temp directory and a working clone that
 * makes commits and pushes them. Uses the real git binary by absolute path, so a spy `git` put
 * first on PATH (watcher-fixtures.ts) counts only the commands under test.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const REAL_GIT = resolveRealGit();

function resolveRealGit(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const candidate = join(dir, 'git');
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      // Skip spy wrappers written by the tests (they live in pullnix test directories).
      if (!candidate.includes('pullnix-')) return candidate;
    } catch {
      // not here
    }
  }
  throw new Error('git is not installed (needed by the tests)');
}

const ENV = {
  GIT_AUTHOR_NAME: 'pullnix test',
  GIT_AUTHOR_EMAIL: 'test@pullnix.invalid',
  GIT_COMMITTER_NAME: 'pullnix test',
  GIT_COMMITTER_EMAIL: 'test@pullnix.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  HOME: tmpdir(),
};

export function git(cwd: string, args: string[], env: Record<string, string> = {}): string {
  return execFileSync(REAL_GIT, args, { cwd, env: { ...process.env, ...ENV, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** How a commit is signed (test/lib/signing.ts): `git <gitArgs> commit -S` with `env`. */
export interface CommitSigning {
  gitArgs: string[];
  env: Record<string, string>;
}

export class GitRemote {
  readonly root: string;
  /** The bare repository: what the watcher's repository.url points at. */
  readonly url: string;
  readonly work: string;
  readonly branch: string;
  private counter = 0;

  constructor(options: { root?: string; branch?: string } = {}) {
    this.root = options.root ?? mkdtempSync(join(tmpdir(), 'pullnix-remote-'));
    this.branch = options.branch ?? 'main';
    this.url = join(this.root, 'remote.git');
    this.work = join(this.root, 'work');
    mkdirSync(this.url, { recursive: true });
    git(this.url, ['init', '--quiet', '--bare', `--initial-branch=${this.branch}`]);
    mkdirSync(this.work, { recursive: true });
    git(this.work, ['init', '--quiet', `--initial-branch=${this.branch}`]);
  }

  /** Commit the given files (path → content) on the working clone; returns the commit id. Not pushed. */
  commit(subject: string, files: Record<string, string> = {}, sign?: CommitSigning): string {
    this.counter += 1;
    const all = Object.keys(files).length > 0 ? files : { 'counter.txt': `${this.counter} ${subject}\n` };
    for (const [path, content] of Object.entries(all)) {
      const full = join(this.work, path);
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
    git(this.work, ['add', '--all']);
    if (sign) git(this.work, [...sign.gitArgs, 'commit', '--quiet', '--allow-empty', '-S', '-m', subject], sign.env);
    else git(this.work, ['commit', '--quiet', '--allow-empty', '-m', subject]);
    return this.head();
  }

  head(): string {
    return git(this.work, ['rev-parse', 'HEAD']);
  }

  push(): void {
    git(this.work, ['push', '--quiet', this.url, `HEAD:refs/heads/${this.branch}`]);
  }

  /** Rewrite the working branch to `commit` (history rewrite); push with forcePush(). */
  resetTo(commit: string): void {
    git(this.work, ['reset', '--quiet', '--hard', commit]);
  }

  forcePush(): void {
    git(this.work, ['push', '--quiet', '--force', this.url, `HEAD:refs/heads/${this.branch}`]);
  }

  /** Make the remote unreachable (its directory disappears) until restore(). */
  takeDown(): void {
    renameSync(this.url, `${this.url}.down`);
  }

  restore(): void {
    renameSync(`${this.url}.down`, this.url);
  }
}
