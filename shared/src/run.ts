/**
 * The one command runner. Every external command pullnix runs (nix, git, systemctl, systemd-run,
 * switch-to-configuration) goes through here as an argv array: no shell, a timeout, a kill-after,
 * an AbortSignal, and a log line before and after. Tests substitute a fake Runner.
 */
import type { Logger } from './log/logger.ts';

export interface RunOptions {
  timeoutMs: number;
  env?: Record<string, string>;
  /** false: the command sees only `env`, nothing of this process's environment (default true). */
  extendEnv?: boolean;
  cwd?: string;
  signal?: AbortSignal;
  /** Grace between SIGTERM and SIGKILL after a timeout or abort. */
  killAfterMs?: number;
  /** Keep only this many trailing bytes of stdout/stderr. */
  maxOutputBytes?: number;
  /**
   * Write stdout, whole, to this file (created or truncated) instead of keeping its tail: for a
   * report that must be read entire (vulnix's). The result's stdout is then ''.
   */
  stdoutFile?: string;
}

export interface RunResult {
  argv: readonly string[];
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
  durationMs: number;
  /** The program could not be started at all (ENOENT, EACCES). */
  spawnError: string | null;
}

export type Runner = (argv: readonly string[], options: RunOptions) => Promise<RunResult>;

/**
 * execa is loaded on the first command, not at start: an idle executor runs no command at all,
 * and a watcher restarted after a deployment only runs git until the next build, so neither
 * pays execa's ~15 MiB of resident memory until it needs it (docs/benchmarks.md, idle machine).
 */
let execaModule: Promise<typeof import('execa')> | undefined;

export function createRunner(log?: Logger): Runner {
  return async (argv, options) => {
    const [file, ...args] = argv;
    if (!file) throw new Error('run: empty argv');
    const { execa } = await (execaModule ??= import('execa'));
    log?.event('command.run', { argv: argv.join(' ') });
    const started = performance.now();
    const result = await execa(file, args, {
      reject: false,
      timeout: options.timeoutMs,
      forceKillAfterDelay: options.killAfterMs ?? 10_000,
      env: options.env ?? {},
      extendEnv: options.extendEnv ?? true,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      ...(options.signal !== undefined ? { cancelSignal: options.signal } : {}),
      stdin: 'ignore',
      ...(options.stdoutFile !== undefined ? { stdout: { file: options.stdoutFile } } : {}),
      stripFinalNewline: false,
      maxBuffer: 64 * 1024 * 1024,
    });
    const durationMs = Math.round(performance.now() - started);
    const limit = options.maxOutputBytes ?? 256 * 1024;
    const spawnError = result.failed && result.exitCode === undefined && !result.timedOut && !result.isCanceled && !result.signal ? (result.code ?? result.shortMessage ?? 'spawn failed') : null;
    const out: RunResult = {
      argv,
      exitCode: result.exitCode ?? null,
      signal: result.signal ?? null,
      stdout: tail(String(result.stdout ?? ''), limit),
      stderr: tail(String(result.stderr ?? ''), limit),
      timedOut: result.timedOut,
      aborted: result.isCanceled,
      durationMs,
      spawnError,
    };
    log?.event('command.done', { cmd: file, exit: out.exitCode, signal: out.signal, ms: durationMs, timed_out: out.timedOut || undefined });
    return out;
  };
}

export function tail(text: string, maxBytes: number): string {
  return text.length <= maxBytes ? text : `…${text.slice(text.length - maxBytes)}`;
}

/** The last n non-empty lines of a command's output, for error messages and history records. */
export function lastLines(text: string, n = 20): string {
  return text.split('\n').filter((l) => l.trim() !== '').slice(-n).join('\n');
}

/**
 * Lines git prints after every failed remote operation whatever went wrong; they would push the
 * line that says why (`ssh: Could not resolve hostname …`, `… Connection refused`, `Permission
 * denied (publickey)`, `Host key verification failed.`) out of the last few.
 */
const GIT_BOILERPLATE: readonly RegExp[] = [/^fatal: Could not read from remote repository\.$/, /^Please make sure you have the correct access rights$/, /^and the repository exists\.$/];
/** git's progress meters (`--progress`, redrawn with \r): never the reason for a failure. */
const GIT_PROGRESS = /^(remote: )?(Enumerating objects|Counting objects|Compressing objects|Receiving objects|Resolving deltas|Unpacking objects|Checking connectivity|Total \d+ \(delta)/;

/**
 * The last n lines of a failed command's output that say why it failed: empty lines, progress
 * meters and git's boilerplate are left out (the boilerplate stays when nothing else is there).
 */
export function reasonLines(text: string, n = 3): string {
  const lines = text
    .split(/\r\n|\r|\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !GIT_PROGRESS.test(l));
  const informative = lines.filter((l) => !GIT_BOILERPLATE.some((re) => re.test(l)));
  return (informative.length > 0 ? informative : lines).slice(-n).join('\n');
}

/** A one-line description of why a command failed. */
export function describeFailure(r: RunResult): string {
  const name = r.argv[0] ?? '?';
  if (r.spawnError) return `${name} could not be started: ${r.spawnError}`;
  if (r.timedOut) return `${name} timed out after ${r.durationMs} ms`;
  if (r.aborted) return `${name} was stopped`;
  if (r.signal) return `${name} was killed by ${r.signal}`;
  const detail = reasonLines(r.stderr) || reasonLines(r.stdout);
  return `${name} exited ${r.exitCode}${detail ? `: ${detail}` : ''}`;
}
