/**
 * git for pullnix-promote: its own bare mirror of the ring branches (`<workDir>/mirror.git`),
 * fetched from the repository, and the one write it ever makes, a fast-forward push of a ring
 * branch. Every command an argv through the shared runner, credentials from the promote config
 * (GIT_SSH_COMMAND: its key, its pinned known_hosts), nothing of the user's git config.
 */
import { existsSync } from 'node:fs';
import { describeFailure, gitEnvironment, type Runner, type RunResult } from '@pullnix/shared';

export interface PromoteGitOptions {
  runner: Runner;
  gitDir: string;
  url: string;
  sshKeyFile: string | null;
  knownHostsFile: string | null;
  timeoutMs?: number;
}

/** Mirror refs of the remote's ring branches: refs/remotes/origin/<branch>. */
export const MIRROR_PREFIX = 'refs/remotes/origin/';

export class PromoteGit {
  private readonly o: PromoteGitOptions;

  constructor(options: PromoteGitOptions) {
    this.o = options;
  }

  get gitDir(): string {
    return this.o.gitDir;
  }

  /**
   * Create the bare mirror on first use, then fetch every branch of the remote in one connection
   * (ring branches are named in rings.json, which is only known after the fetch), pruning those
   * that are gone. Returns each branch's head.
   */
  async fetchAll(): Promise<Map<string, string>> {
    if (!existsSync(this.o.gitDir)) await this.must(['init', '--bare', '--quiet', this.o.gitDir], false);
    await this.must(['fetch', '--quiet', '--prune', '--no-tags', '--', this.o.url, `+refs/heads/*:${MIRROR_PREFIX}*`]);
    const r = await this.must(['for-each-ref', '--format=%(objectname) %(refname)', MIRROR_PREFIX]);
    const heads = new Map<string, string>();
    for (const line of r.stdout.split('\n')) {
      const [commit, ref] = line.split(' ');
      if (commit && ref?.startsWith(MIRROR_PREFIX)) heads.set(ref.slice(MIRROR_PREFIX.length), commit);
    }
    return heads;
  }

  /** A file's content at a commit; null when the commit has no such file. */
  async show(commit: string, path: string): Promise<string | null> {
    const r = await this.run(['cat-file', 'blob', `${commit}:${path}`]);
    if (r.exitCode === 0) return r.stdout;
    const exists = await this.run(['cat-file', '-e', `${commit}:${path}`]);
    if (exists.exitCode !== 0) return null;
    throw new Error(`git cat-file ${commit}:${path}: ${describeFailure(r)}`);
  }

  /** Whether `ancestor` is `descendant` or one of its ancestors. */
  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    const r = await this.run(['merge-base', '--is-ancestor', ancestor, descendant]);
    if (r.exitCode === 0) return true;
    if (r.exitCode === 1) return false;
    throw new Error(`git merge-base --is-ancestor: ${describeFailure(r)}`);
  }

  /**
   * Move `branch` on the remote to `commit` by a fast-forward only: a plain push, no `+` in the
   * refspec, no --force nor --force-with-lease (which would allow a non-fast-forward when the
   * lease holds: git-push(1)), so git refuses it unless the branch's remote value is an ancestor
   * of `commit` (git-push(1): "the remote ref ... must be an ancestor of the local ref"). Never
   * creates a commit.
   */
  async fastForward(branch: string, commit: string): Promise<void> {
    await this.must(['push', '--quiet', '--porcelain', '--', this.o.url, `${commit}:refs/heads/${branch}`]);
  }

  private async must(args: string[], inRepo = true): Promise<RunResult> {
    const r = await this.run(args, inRepo);
    if (r.exitCode !== 0) throw new Error(`git ${args[0]}: ${describeFailure(r)}`);
    return r;
  }

  private run(args: string[], inRepo = true): Promise<RunResult> {
    const env = { ...gitEnvironment({ repository: this.o }), GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', LANG: 'C' };
    return this.o.runner(['git', ...(inRepo ? ['--git-dir', this.o.gitDir] : []), ...args], { timeoutMs: this.o.timeoutMs ?? 300_000, env, extendEnv: false });
  }
}
