/**
 * For the pullnix-ctl tests: a real pullnix-executor process on a socket in a temp dir, and
 * pullnix-ctl run as a real process (optionally as another user), so exit codes, stdout, stderr
 * and socket permissions are the ones an operator sees.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import type { DeploymentRecord } from '@pullnix/shared';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const NODE = process.execPath;
export const EXECUTOR_MAIN = join(ROOT, 'executor/dist/src/main.js');
export const CTL_MAIN = join(ROOT, 'executor/dist/src/ctl/main.js');

export interface ExecutorOptions {
  /** Extra operator keys for config.operators.keys. */
  operatorKeys?: { id: string; publicKey: string }[];
  group?: string;
  /** history.jsonl lines written before the executor starts. */
  history?: DeploymentRecord[];
}

export class RunningExecutor {
  private readonly options: ExecutorOptions;
  private where: { dir: string; configPath: string; socketPath: string; stateDir: string } | null = null;
  private child: ChildProcess | null = null;
  private output = '';
  private exited: Promise<number | null> | null = null;

  constructor(options: ExecutorOptions = {}) {
    this.options = options;
  }

  private get paths(): { dir: string; configPath: string; socketPath: string; stateDir: string } {
    if (!this.where) throw new Error('executor not started');
    return this.where;
  }

  get dir(): string {
    return this.paths.dir;
  }

  get configPath(): string {
    return this.paths.configPath;
  }

  get socketPath(): string {
    return this.paths.socketPath;
  }

  get stateDir(): string {
    return this.paths.stateDir;
  }

  get localKeyPath(): string {
    return join(this.stateDir, 'keys', 'local-operator.key');
  }

  get watcherKeyPath(): string {
    return join(this.stateDir, 'keys', 'watcher.key');
  }

  /** Made in start(), not before: a suite filtered out by --test-name-pattern leaves nothing behind. */
  private prepare(): void {
    // Traversable by other users, so the permission test reaches the socket directory's own check.
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-ctl-'));
    chmodSync(dir, 0o755);
    this.where = { dir, configPath: join(dir, 'config.json'), socketPath: join(dir, 'run', 'executor.sock'), stateDir: join(dir, 'state') };
    const config = {
      repository: { url: `file://${join(dir, 'remote.git')}` },
      build: { mode: 'flake' },
      stateDir: this.stateDir,
      socketPath: this.socketPath,
      operators: { group: this.options.group ?? 'root', keys: this.options.operatorKeys ?? [] },
      paths: { systemProfile: join(dir, 'profiles', 'system'), currentSystem: join(dir, 'current-system'), storeDir: '/nix/store', gcRootsDir: join(dir, 'gcroots') },
    };
    writeFileSync(this.configPath, JSON.stringify(config, null, 2), { mode: 0o644 });
    if (this.options.history) {
      mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
      writeFileSync(join(this.stateDir, 'history.jsonl'), this.options.history.map((r) => `${JSON.stringify(r)}\n`).join(''), { mode: 0o600 });
    }
  }

  get log(): string {
    return this.output;
  }

  get pid(): number {
    if (!this.child?.pid) throw new Error('executor not started');
    return this.child.pid;
  }

  /** Starts the process and waits for its `executor.started` line (or its death, with its output). */
  async start(): Promise<this> {
    if (process.getuid?.() !== 0) {
      throw new Error('these tests start a real pullnix-executor, which chowns its socket to the operator group, and switch to user nobody: run them as root');
    }
    this.prepare();
    const child = spawn(NODE, [EXECUTOR_MAIN, '--config', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        this.output += chunk.toString();
        if (/^<\d>executor\.started /m.test(this.output)) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.on('exit', (code) => reject(new Error(`pullnix-executor exited ${code} before it was listening:\n${this.output}`)));
    });
    return this;
  }

  /** SIGTERM and wait; SIGKILL leaves the socket file behind (a crashed executor). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    await this.exited;
  }

  async dispose(): Promise<void> {
    await this.stop();
    if (this.where) rmSync(this.where.dir, { recursive: true, force: true });
  }
}

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CtlRunOptions {
  env?: NodeJS.ProcessEnv;
  /** Run as this user (setpriv, no supplementary groups): the permission tests. */
  asUser?: { user: string; group: string };
  /** Wrap the full command (e.g. in script(1) for a terminal); `args` are then pullnix-ctl's arguments. */
  wrap?: (argv: string[]) => string[];
  args?: string[];
}

/** pullnix-ctl as a separate process; HOME points at an empty dir so no operator's own key interferes. */
export function runCtl(args: string[], options: CtlRunOptions = {}): Promise<CtlResult> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: '/nonexistent', LANG: 'C.UTF-8', ...options.env };
  const all = [...args, ...(options.args ?? [])];
  let argv = options.asUser
    ? ['setpriv', `--reuid=${options.asUser.user}`, `--regid=${options.asUser.group}`, '--clear-groups', NODE, CTL_MAIN, ...all]
    : [NODE, CTL_MAIN, ...all];
  if (options.wrap) argv = options.wrap(argv);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const validators = new Map<string, ValidateFunction>();

/**
 * Validates against the schema pullnix-ctl itself publishes (`pullnix-ctl schema NAME`): the
 * documented contract, read the way a script author would read it.
 */
export async function validateOutput(name: string, value: unknown): Promise<string | null> {
  let validate = validators.get(name);
  if (!validate) {
    const r = await runCtl(['schema', name]);
    if (r.code !== 0) throw new Error(`pullnix-ctl schema ${name} exited ${r.code}: ${r.stderr}`);
    validate = new Ajv({ allErrors: true, strict: true }).compile(JSON.parse(r.stdout) as object);
    validators.set(name, validate);
  }
  if (validate(value)) return null;
  return (validate.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`).join('; ');
}

/** A finished deployment record, for seeding history.jsonl. */
export function record(id: number, fields: Partial<DeploymentRecord> & { commit: string }): DeploymentRecord {
  const startedAt = new Date(Date.now() - (10 - Math.min(id, 9)) * 60_000).toISOString();
  const finishedAt = new Date(Date.parse(startedAt) + 30_000).toISOString();
  return {
    id,
    kind: 'deploy',
    toplevel: `/nix/store/${'a'.repeat(31)}${id % 10}-nixos-system-test-${id}`,
    activation: 'test',
    requestedBy: 'watcher',
    previous: { system: null, generation: null },
    phase: 'finished',
    phases: [
      { phase: 'accepted', at: startedAt },
      { phase: 'finished', at: finishedAt },
    ],
    outcome: 'succeeded',
    error: null,
    activationExit: 0,
    generation: id + 40,
    startedAt,
    finishedAt,
    ...fields,
  };
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}
