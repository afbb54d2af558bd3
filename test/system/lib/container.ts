/**
 * A throw-away systemd container: systemd-nspawn with the host's /usr read-only and a tmpfs root
 * (`-D / --volatile=yes`), systemd as PID 1, only a loopback interface (--private-network), its own
 * cgroup, a clean cgroup2 tree inside. Commands run inside through nsenter (exit code and output
 * come back). It can be powered off, hard-killed (a power cut: PID 1 and everything in its PID
 * namespace gets SIGKILL) and booted again on the same host directories.
 *
 * Recipe and traps: ../shared/TESTBED.md and ../shared/lab/systemd-container-example.sh.
 * Host PID 1 is not systemd here (no bus, no machined): --register=no --keep-unit, and nspawn is
 * started in a cgroup of its own so parallel runs don't collide.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, waitFor, type RunOptions, type RunResult } from './proc.ts';

export interface Bind {
  host: string;
  container: string;
  readOnly?: boolean;
}

export interface ContainerOptions {
  /** Machine name (also the cgroup and propagate directory name). */
  name: string;
  /** 32 hex digits: the machine id, stable across boots so the persistent journal is one. */
  machineId: string;
  binds: readonly Bind[];
  /** Where console logs of each boot go. */
  logDir: string;
  /** Scratch directory on the host (the /dev/null replacement lives here). */
  scratchDir: string;
}

export interface ExecOptions extends RunOptions {
  /** Run as this uid:gid (setpriv, no PAM). */
  user?: { uid: number; gid: number; groups?: number[] };
}

const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class Container {
  readonly options: ContainerOptions;
  private nspawn: ChildProcess | null = null;
  private nspawnExit: Promise<number | null> | null = null;
  private pid1: number | null = null;
  private cgroups: string[] = [];
  private boots = 0;
  /** Set while poweroff/powerCut/kill stop it; any other exit of nspawn is the machine's own (a reboot: 133). */
  private stopping = false;
  /** Called when nspawn exits without poweroff/powerCut/kill (after the container's cleanup). */
  onUnexpectedExit: ((code: number | null) => void) | null = null;

  constructor(options: ContainerOptions) {
    this.options = options;
  }

  get running(): boolean {
    return this.nspawn !== null;
  }

  /** Host pid of the container's PID 1 (systemd). */
  get pid(): number {
    if (this.pid1 === null) throw new Error(`container ${this.options.name} is not running`);
    return this.pid1;
  }

  /** Boot and wait until `systemctl is-system-running` says running or degraded. */
  async boot(timeoutMs = 60_000): Promise<void> {
    if (this.nspawn) throw new Error(`container ${this.options.name} is already running`);
    const { name, machineId, binds, logDir, scratchDir } = this.options;
    mkdirSync(logDir, { recursive: true });
    mkdirSync(scratchDir, { recursive: true });
    this.boots++;
    // A previous hard kill leaves this behind, and nspawn refuses to reuse it.
    rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true });
    this.cgroups = cgroupPaths(name);
    for (const cg of this.cgroups) mkdirSync(cg, { recursive: true });
    const args = [
      '--quiet',
      '--register=no',
      '--keep-unit',
      '--console=passive',
      '--private-network',
      `--machine=${name}`,
      `--uuid=${machineId}`,
      '-D',
      '/',
      '--volatile=yes',
      ...binds.map((b) => `--${b.readOnly ? 'bind-ro' : 'bind'}=${b.host}:${b.container}`),
      ...devNullFix(scratchDir),
      '--boot',
      'systemd.firstboot=off',
    ];
    const console = createWriteStream(join(logDir, `console-boot${this.boots}.log`));
    // sh puts itself into the cgroups, then becomes nspawn (same pid): nspawn and its payload
    // live in a cgroup of their own from the first instruction on.
    const script = 'n=$1; shift; i=0; while [ $i -lt $n ]; do echo $$ > "$1/cgroup.procs" || exit 97; shift; i=$((i+1)); done; exec "$@"';
    const child = spawn('/bin/sh', ['-c', script, 'sh', String(this.cgroups.length), ...this.cgroups, 'systemd-nspawn', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1', SYSTEMD_COLORS: '0' },
    });
    child.stdout!.pipe(console, { end: false });
    child.stderr!.pipe(console, { end: false });
    child.on('close', () => console.end());
    this.nspawn = child;
    LIVE.add(this);
    this.stopping = false;
    this.nspawnExit = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
    void this.nspawnExit.then((code) => {
      if (this.stopping || this.nspawn !== child) return;
      this.afterExit();
      this.onUnexpectedExit?.(code);
    });
    const nspawnPid = child.pid!;
    try {
      this.pid1 = await waitFor(
        `container ${name}: systemd as PID 1`,
        async () => {
          if (child.exitCode !== null) throw new Error(`systemd-nspawn exited ${child.exitCode}; see ${join(logDir, `console-boot${this.boots}.log`)}`);
          return childNamed(nspawnPid, 'systemd');
        },
        { timeoutMs, intervalMs: 50 },
      );
      await waitFor(
        `container ${name}: systemctl is-system-running says running or degraded`,
        async () => {
          if (child.exitCode !== null) throw new Error(`systemd-nspawn exited ${child.exitCode}`);
          const r = await this.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: 20_000 });
          const state = r.stdout.trim();
          return state === 'running' || state === 'degraded' ? state : undefined;
        },
        { timeoutMs, intervalMs: 100 },
      );
    } catch (error) {
      await this.kill();
      throw error;
    }
  }

  /** Run argv inside the container (all its namespaces), with a clean environment. */
  exec(argv: readonly string[], options: ExecOptions = {}): Promise<RunResult> {
    const env = ['env', '-i', `PATH=${CONTAINER_PATH}`, 'LANG=C.UTF-8', 'SYSTEMD_COLORS=0', 'SYSTEMD_PAGER=', 'HOME=/root'];
    for (const [k, v] of Object.entries(options.env ?? {})) if (v !== undefined) env.push(`${k}=${v}`);
    const user = options.user
      ? [
          'setpriv',
          `--reuid=${options.user.uid}`,
          `--regid=${options.user.gid}`,
          options.user.groups && options.user.groups.length > 0 ? `--groups=${options.user.groups.join(',')}` : '--clear-groups',
          '--',
        ]
      : [];
    const runOptions: RunOptions = { env: { PATH: process.env.PATH ?? CONTAINER_PATH } };
    if (options.input !== undefined) runOptions.input = options.input;
    runOptions.timeoutMs = options.timeoutMs ?? 120_000;
    return run(['nsenter', '-t', String(this.pid), '-a', ...env, ...user, ...argv], runOptions);
  }

  /** exec() that throws with the output unless the command exits 0; returns stdout. */
  async execOk(argv: readonly string[], options: ExecOptions = {}): Promise<string> {
    const r = await this.exec(argv, options);
    if (r.code !== 0) throw new Error(`in container: ${argv.join(' ')} exited ${r.code ?? r.signal}\n${r.stderr.trim()}\n${r.stdout.trim()}`.trim());
    return r.stdout;
  }

  /** Bash script inside the container. */
  sh(script: string, options: ExecOptions = {}): Promise<RunResult> {
    return this.exec(['bash', '-euo', 'pipefail', '-c', script], options);
  }

  async shOk(script: string, options: ExecOptions = {}): Promise<string> {
    return this.execOk(['bash', '-euo', 'pipefail', '-c', script], options);
  }

  /** Clean shutdown: `systemctl poweroff`, wait for nspawn. Returns nspawn's exit code. */
  async poweroff(timeoutMs = 30_000): Promise<number | null> {
    if (!this.nspawn) return null;
    this.stopping = true;
    await this.exec(['systemctl', 'poweroff', '--no-block'], { timeoutMs: 10_000 }).catch(() => undefined);
    const code = await Promise.race([this.nspawnExit, timeout(timeoutMs)]);
    if (code === 'timeout') {
      await this.kill();
      throw new Error(`container ${this.options.name} did not power off within ${timeoutMs / 1000} s; killed`);
    }
    this.afterExit();
    return code;
  }

  /**
   * A power cut: SIGKILL to the container's PID 1, which takes every process of its PID namespace
   * with it at once (nothing gets to flush or clean up), then wait for nspawn to notice.
   */
  async powerCut(): Promise<void> {
    if (!this.nspawn) throw new Error('power cut: container not running');
    this.stopping = true;
    process.kill(this.pid, 'SIGKILL');
    const code = await Promise.race([this.nspawnExit, timeout(15_000)]);
    if (code === 'timeout') await this.kill();
    else this.afterExit();
  }

  /** Stop at any cost (cleanup path): kill PID 1, then nspawn, then anything left in the cgroups. */
  async kill(): Promise<void> {
    this.stopping = true;
    const child = this.nspawn;
    if (child) {
      if (this.pid1 !== null) {
        try {
          process.kill(this.pid1, 'SIGKILL');
        } catch {}
      }
      const exited = await Promise.race([this.nspawnExit, timeout(5000)]);
      if (exited === 'timeout') {
        try {
          child.kill('SIGKILL');
        } catch {}
        await Promise.race([this.nspawnExit, timeout(5000)]);
      }
    }
    this.afterExit();
  }

  /** Last resort when the test process exits with the container still up (timeout, signal): synchronous. */
  killNow(): void {
    this.stopping = true;
    for (const pid of [this.pid1, this.nspawn?.pid]) {
      if (pid == null) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    for (let i = 0; i < 30 && this.nspawn?.pid !== undefined && alive(this.nspawn.pid); i++) sleepSync(100);
    this.afterExit();
  }

  private afterExit(): void {
    LIVE.delete(this);
    this.nspawn = null;
    this.nspawnExit = null;
    this.pid1 = null;
    rmSync(`/run/systemd/nspawn/propagate/${this.options.name}`, { recursive: true, force: true });
    for (const cg of this.cgroups) removeCgroup(cg);
    this.cgroups = [];
  }
}

/** Containers still running: killed (synchronously) if the process exits without stopping them. */
const LIVE = new Set<Container>();
process.on('exit', () => {
  for (const c of LIVE) c.killNow();
});

/** The pid of a child of `parent` whose comm is `name` (no procps needed). */
function childNamed(parent: number, name: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may contain spaces and parentheses: split at the last ')'
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === parent && comm === name) return Number(entry);
    } catch {
      // the process went away meanwhile
    }
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    // a zombie still "exists" for kill(0): look at its state
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Resolves 'timeout' after ms without keeping the process alive. */
function timeout(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
}

/** The cgroup(s) nspawn runs in: none when host PID 1 is systemd (it manages cgroups itself). */
function cgroupPaths(name: string): string[] {
  if (readFileSync('/proc/1/comm', 'utf8').trim() === 'systemd') return [];
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return [`/sys/fs/cgroup/${name}`];
  return ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd'].filter((h) => existsSync(h)).map((h) => `${h}/${name}`);
}

function removeCgroup(path: string): void {
  if (!existsSync(path)) return;
  // Anything still inside (a hard-killed run) is killed first where the kernel offers cgroup.kill.
  try {
    if (existsSync(join(path, 'cgroup.kill'))) writeFileSync(join(path, 'cgroup.kill'), '1');
  } catch {}
  const rm = (dir: string, attempt: number): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) rm(join(dir, entry.name), attempt);
    try {
      rmdirSync(dir);
    } catch (error) {
      if (attempt >= 50) process.stderr.write(`[bed] cannot remove cgroup ${dir}: ${(error as Error).message}\n`);
      else throw error;
    }
  };
  for (let attempt = 0; attempt <= 50; attempt++) {
    try {
      rm(path, attempt);
      return;
    } catch {
      // processes may take a moment to leave after SIGKILL
      sleepSync(100);
    }
  }
}

/** The host's /dev/null may be mode 0620 here, and nspawn copies that mode: bind a correct one. */
function devNullFix(scratchDir: string): string[] {
  if ((statSync('/dev/null').mode & 0o777) === 0o666) return [];
  const node = join(scratchDir, 'devnull');
  if (!existsSync(node)) {
    const r = spawnSyncOk(['mknod', '-m', '0666', node, 'c', '1', '3']);
    if (!r) throw new Error(`cannot create ${node} (mknod) for the /dev/null fix`);
  }
  return [`--bind=${node}:/dev/null`];
}

function spawnSyncOk(argv: string[]): boolean {
  return spawnSync(argv[0]!, argv.slice(1)).status === 0;
}
