/**
 * What several benchmarks share: temp directories that are always removed, real git remotes
 * (tiny, or 10,000 commits × 5,000 files through `git fast-import`), a private sshd on 127.0.0.1,
 * deployment records in the executor's history format, and small timing helpers.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { DeploymentRecord } from '@pullnix/shared';
import { freePort } from '../lib/git-ssh-server.ts';

/** A temp directory and a list of clean-ups run in reverse order, even after a failure. */
export class Scratch {
  readonly dir: string;
  private readonly cleanups: (() => unknown)[] = [];

  constructor(name: string) {
    this.dir = mkdtempSync(join(tmpdir(), `pullnix-bench-${name}-`));
    this.defer(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  defer(cleanup: () => unknown): void {
    this.cleanups.push(cleanup);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  async close(): Promise<void> {
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        process.stderr.write(`bench cleanup: ${(error as Error).message}\n`);
      }
    }
    this.cleanups.length = 0;
  }
}

/** Run `body` with a Scratch that is closed afterwards whatever happens. */
export async function withScratch<T>(name: string, body: (s: Scratch) => Promise<T>): Promise<T> {
  const scratch = new Scratch(name);
  try {
    return await body(scratch);
  } finally {
    await scratch.close();
  }
}

export const GIT_IDENTITY = {
  GIT_AUTHOR_NAME: 'pullnix bench',
  GIT_AUTHOR_EMAIL: 'bench@pullnix.invalid',
  GIT_COMMITTER_NAME: 'pullnix bench',
  GIT_COMMITTER_EMAIL: 'bench@pullnix.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
};

export function git(cwd: string, args: string[], input?: string | Buffer): string {
  return execFileSync('git', args, { cwd, input, env: { ...process.env, ...GIT_IDENTITY }, encoding: 'utf8', stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], maxBuffer: 1 << 28 }).trim();
}

/**
 * A bare repository at `<dir>` whose branch `main` has `commits` commits over `files` files,
 * written by one `git fast-import` from a generated stream (10,000 commits take about a second).
 * The first commit adds every file; each later commit changes one. Returns the head.
 */
export function makeBareRepo(dir: string, commits: number, files: number): string {
  mkdirSync(dir, { recursive: true });
  git(dir, ['init', '--quiet', '--bare', '--initial-branch=main']);
  const chunks: string[] = [];
  const data = (text: string) => `data ${Buffer.byteLength(text)}\n${text}\n`;
  const path = (i: number) => `hosts/h${i % 50}/module-${i}.nix`;
  for (let i = 0; i < files; i++) chunks.push(`blob\nmark :${i + 1}\n${data(`{ ... }: {\n  # module ${i}\n  networking.extraHosts = "10.0.${i % 256}.${(i >> 8) % 256} m${i}";\n}\n`)}`);
  const t0 = 1_700_000_000;
  for (let c = 0; c < commits; c++) {
    let body = `commit refs/heads/main\ncommitter pullnix bench <bench@pullnix.invalid> ${t0 + c * 60} +0000\n${data(`change ${c}`)}`;
    if (c === 0) {
      if (files === 0) body += `M 100644 inline flake.nix\n${data('{ }\n')}`;
      for (let i = 0; i < files; i++) body += `M 100644 :${i + 1} ${path(i)}\n`;
    } else {
      const i = files > 0 ? (c * 7919) % files : 0;
      body += `M 100644 inline ${files > 0 ? path(i) : 'flake.nix'}\n${data(`{ ... }: { # revision ${c} of module ${i}\n}\n`)}`;
    }
    chunks.push(body);
  }
  chunks.push('done\n');
  git(dir, ['fast-import', '--quiet', '--done'], chunks.join(''));
  return git(dir, ['rev-parse', 'refs/heads/main']);
}

export { freePort };

export interface Sshd {
  port: number;
  /** Private deploy key (repository.sshKeyFile). */
  keyFile: string;
  /** Pinned host key (repository.knownHostsFile). */
  knownHosts: string;
  url(repoPath: string): string;
  stop(): Promise<void>;
}

/**
 * Our own sshd on 127.0.0.1 (a high port, a temp host key, a temp authorized_keys holding only
 * the deploy key). Needs root (it logs the deploy key in as the current user).
 */
export async function startSshd(dir: string): Promise<Sshd> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hostKey = join(dir, 'host_ed25519');
  const keyFile = join(dir, 'deploy_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'pullnix-bench-deploy', '-f', keyFile]);
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${keyFile}.pub`), { mode: 0o600 });
  const port = await freePort();
  const knownHosts = join(dir, 'known_hosts');
  const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPub[0]} ${hostPub[1]}\n`);
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'MaxStartups 100',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  // Ready when it accepts a TCP connection.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd exited ${child.exitCode}: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
      s.connect(port, '127.0.0.1');
    });
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port}: ${stderr}`);
    await sleep(50);
  }
  const user = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
  return {
    port,
    keyFile,
    knownHosts,
    url: (repoPath) => `ssh://${user}@127.0.0.1:${port}${repoPath}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A stream that drops everything: the benchmark's loggers must not print into the table. */
export function nullStream(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}

/** Run a command as a child process; resolves with its wall time in ms (spawn to exit). */
export function timeCommand(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    execFile(file, args, { env: options.env ?? process.env, cwd: options.cwd, maxBuffer: 1 << 24 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args.join(' ')}: ${error.message} ${stderr}`));
      else resolve(performance.now() - t);
    });
  });
}

export function writeExecutable(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

export function randomCommit(): string {
  return randomBytes(20).toString('hex');
}

/**
 * The lines one deployment leaves in history.jsonl: a full snapshot at every phase change
 * (accepted, activating, verifying, committing, finished), as the executor's pipeline writes
 * them. Roughly one in ten ends rolled back.
 */
export function historyLines(id: number, at: number, previous: string | null, generation: number): { lines: string[]; record: DeploymentRecord } {
  const commit = randomCommit();
  const toplevel = `/nix/store/${randomBytes(16).toString('hex').slice(0, 32).replace(/[eotu]/g, 'a')}-nixos-system-bench-25.05.${id}`;
  const failed = id % 10 === 7;
  const iso = (ms: number) => new Date(at + ms).toISOString();
  const record: DeploymentRecord = {
    id,
    kind: 'deploy',
    commit,
    toplevel,
    activation: 'test',
    requestedBy: 'watcher',
    previous: { system: previous, generation: generation - 1 },
    phase: 'accepted',
    phases: [{ phase: 'accepted', at: iso(0) }],
    outcome: null,
    error: null,
    activationExit: null,
    generation: null,
    startedAt: iso(0),
    finishedAt: null,
  };
  const lines: string[] = [JSON.stringify(record)];
  const step = (phase: DeploymentRecord['phase'], ms: number, detail?: string) => {
    record.phase = phase;
    record.phases.push(detail === undefined ? { phase, at: iso(ms) } : { phase, at: iso(ms), detail });
    lines.push(JSON.stringify(record));
  };
  step('activating', 40, 'test');
  record.activationExit = 0;
  step('verifying', 9_000);
  if (failed) {
    step('rolling-back', 130_000, `git ls-remote failed 7 times within verify.timeoutSec=120; last: git exited 128: fatal: unable to access the remote`);
    record.outcome = 'rolled-back';
    record.error = { code: 'INTERNAL', message: 'git ls-remote failed 7 times within verify.timeoutSec=120; last: git exited 128: fatal: unable to access the remote' };
    record.finishedAt = iso(140_000);
    step('finished', 140_000, 'rolled-back');
  } else {
    step('committing', 9_400);
    record.outcome = 'succeeded';
    record.generation = generation;
    record.finishedAt = iso(11_000);
    step('finished', 11_000, 'succeeded');
  }
  return { lines, record };
}

/** A history.jsonl with `count` deployments (every snapshot line); returns the last succeeded record. */
export function writeHistory(file: string, count: number, options: { lastCommit?: string } = {}): DeploymentRecord | null {
  const out: string[] = [];
  let previous: string | null = null;
  let generation = 1;
  let last: DeploymentRecord | null = null;
  const start = Date.parse('2024-01-01T00:00:00Z');
  for (let id = 1; id <= count; id++) {
    const { lines, record } = historyLines(id, start + id * 3_600_000, previous, generation + 1);
    if (id === count && options.lastCommit && record.outcome === 'succeeded') {
      // Make the newest deployment the given commit (the watcher's head), rewriting its lines.
      const fixed = lines.map((l) => l.replace(record.commit, options.lastCommit!));
      record.commit = options.lastCommit;
      out.push(...fixed);
    } else out.push(...lines);
    if (record.outcome === 'succeeded') {
      previous = record.toplevel;
      generation++;
      last = record;
    }
  }
  writeFileSync(file, out.length ? `${out.join('\n')}\n` : '', { mode: 0o600 });
  return last;
}

export function fmtCount(n: number): string {
  return n.toLocaleString('en-US');
}
