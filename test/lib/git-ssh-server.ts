/**
 * A real git server over SSH on this machine, without a bed container: the host's own OpenSSH
 * `sshd` (Debian's openssh-server) on 127.0.0.1 and a free port, as the bed's generation runs it
 * (test/system/config-repo/generation.nix, bed-git/sshd_config), serving a bare repository
 * with the server's reflog on (core.logAllRefUpdates=always), so a test can read every update
 * of every branch afterwards. Two keys, as in a real setup:
 *   - the deploy key, read-only: forced `git-upload-pack` of this repository (as the bed's);
 *   - a push key (pullnix-promote's): `git-shell -c "$SSH_ORIGINAL_COMMAND"`, which runs only
 *     git-upload-pack, git-receive-pack and git-upload-archive (git-shell(1)).
 * Needs root (sshd logs users in; it runs as root and logs in as root).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { git, REAL_GIT } from './git-remote.ts';

const execFileAsync = promisify(execFile);

export interface ReflogEntry {
  ref: string;
  old: string;
  new: string;
  message: string;
}

export class GitSshServer {
  readonly root: string;
  readonly repo: string;
  readonly port: number;
  readonly url: string;
  readonly deployKey: string;
  readonly pushKey: string;
  readonly knownHosts: string;
  private readonly sshd: ChildProcess;
  private exited = false;

  private constructor(root: string, port: number, sshd: ChildProcess) {
    this.root = root;
    this.port = port;
    this.repo = join(root, 'config.git');
    this.url = `ssh://root@127.0.0.1:${port}${this.repo}`;
    this.deployKey = join(root, 'deploy_key');
    this.pushKey = join(root, 'push_key');
    this.knownHosts = join(root, 'known_hosts');
    this.sshd = sshd;
    sshd.once('exit', () => {
      this.exited = true;
    });
  }

  static async start(root: string): Promise<GitSshServer> {
    mkdirSync(root, { recursive: true, mode: 0o700 });
    const repo = join(root, 'config.git');
    git(root, ['init', '--quiet', '--bare', '--initial-branch=main', repo]);
    git(repo, ['config', 'core.logAllRefUpdates', 'always']);
    for (const name of ['host_key', 'deploy_key', 'push_key']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(root, name)]);
    const pub = (name: string) => readFileSync(join(root, `${name}.pub`), 'utf8').trim();
    writeFileSync(
      join(root, 'authorized_keys'),
      `restrict,command="git-upload-pack '${repo}'" ${pub('deploy_key')}\nrestrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" ${pub('push_key')}\n`,
      { mode: 0o600 },
    );
    const port = await freePort();
    writeFileSync(join(root, 'known_hosts'), `[127.0.0.1]:${port} ${pub('host_key').split(' ').slice(0, 2).join(' ')}\n`);
    writeFileSync(
      join(root, 'sshd_config'),
      [
        'ListenAddress 127.0.0.1',
        `Port ${port}`,
        `HostKey ${join(root, 'host_key')}`,
        `AuthorizedKeysFile ${join(root, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        // Nothing a git session does not need (each costs time on a loaded machine).
        'PrintMotd no',
        'PrintLastLog no',
        'UseDNS no',
        'PidFile none',
        // The temp directory's parents (/tmp) are world-writable: a test server, not a policy.
        'StrictModes no',
        'AcceptEnv GIT_PROTOCOL',
        `SetEnv PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
        'LogLevel ERROR',
      ].join('\n') + '\n',
    );
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(root, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    sshd.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const server = new GitSshServer(root, port, sshd);
    // Ready when a real ls-remote over the deploy key answers (waits on the condition).
    for (let i = 0; ; i++) {
      if (server.exited) throw new Error(`sshd exited: ${stderr}`);
      try {
        server.lsRemote();
        break;
      } catch (error) {
        if (i > 200) throw new Error(`the git server did not answer: ${(error as Error).message}; sshd: ${stderr}`, { cause: error });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    return server;
  }

  /** GIT_SSH_COMMAND for a key. */
  sshCommand(key: string): string {
    return `ssh -o BatchMode=yes -o IdentitiesOnly=yes -i ${key} -o UserKnownHostsFile=${this.knownHosts} -o StrictHostKeyChecking=yes`;
  }

  /** The branches as a host sees them: an ls-remote over the read-only deploy key. */
  lsRemote(): Map<string, string> {
    return parseHeads(execFileSync(REAL_GIT, ['ls-remote', '--heads', this.url], { env: { ...process.env, GIT_SSH_COMMAND: this.sshCommand(this.deployKey) }, encoding: 'utf8' }));
  }

  /**
   * The branches read in the server's repository itself, without SSH: for a simulation of many
   * hosts in one process, where an SSH connection per host and round would only measure sshd.
   */
  async heads(): Promise<Map<string, string>> {
    const { stdout } = await execFileAsync(REAL_GIT, ['--git-dir', this.repo, 'for-each-ref', '--format=%(objectname)\t%(refname)', 'refs/heads/'], { encoding: 'utf8' });
    return parseHeads(stdout);
  }

  /** Every update of a branch the server recorded, oldest first (its reflog). */
  reflog(branch: string): ReflogEntry[] {
    let text: string;
    try {
      text = readFileSync(join(this.repo, 'logs/refs/heads', branch), 'utf8');
    } catch {
      return [];
    }
    return text
      .trim()
      .split('\n')
      .map((line) => {
        const [head, message = ''] = line.split('\t');
        const [old = '', neu = ''] = head!.split(' ');
        return { ref: branch, old, new: neu, message };
      });
  }

  /** Whether `a` is an ancestor of (or equal to) `b` in the server's repository. */
  isAncestor(a: string, b: string): boolean {
    try {
      execFileSync(REAL_GIT, ['--git-dir', this.repo, 'merge-base', '--is-ancestor', a, b]);
      return true;
    } catch {
      return false;
    }
  }

  stop(): void {
    if (!this.exited) this.sshd.kill('SIGTERM');
  }
}

function parseHeads(out: string): Map<string, string> {
  const heads = new Map<string, string>();
  for (const line of out.trim().split('\n')) {
    const [commit, ref] = line.split('\t');
    if (commit && ref) heads.set(ref.replace(/^refs\/heads\//, ''), commit);
  }
  return heads;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
