/**
 * Small process helpers for the system test bed: run a command (argv, never a shell string
 * built from data), collect exit code and output; wait for a condition instead of sleeping.
 */
import { spawn, type SpawnOptions } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('run: empty argv');
  const spawnOptions: SpawnOptions = { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env };
  if (options.cwd !== undefined) spawnOptions.cwd = options.cwd;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer =
      options.timeoutMs !== undefined
        ? setTimeout(() => {
            stderr += `\n[bed] ${argv.join(' ')}: killed after ${options.timeoutMs} ms\n`;
            child.kill('SIGKILL');
          }, options.timeoutMs)
        : null;
    child.on('error', (error) => {
      if (timer) clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin!.on('error', () => {});
    child.stdin!.end(options.input ?? '');
  });
}

/** run() that throws (with the output) unless the exit code is 0. */
export async function runOk(argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const r = await run(argv, options);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code ?? r.signal}\n${r.stderr.trim()}\n${r.stdout.trim()}`.trim());
  return r.stdout;
}

export class WaitTimeout extends Error {
  override readonly name = 'WaitTimeout';
}

/**
 * Poll `probe` until it returns a value other than undefined/false, or time out with a message
 * that says what was awaited and what the probe saw last.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; describe?: () => Promise<string> | string } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 200;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const seen = options.describe ? `\nlast seen: ${await options.describe()}` : '';
      const err = lastError ? `\nlast probe error: ${(lastError as Error).message ?? String(lastError)}` : '';
      throw new WaitTimeout(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for: ${what}${seen}${err}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
