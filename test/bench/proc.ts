import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * The V8 flags the package's wrappers start each daemon with (nixos/node-flags.json, read by
 * nixos/package.nix), so the benchmarks measure the daemons as they run. PULLNIX_BENCH_NO_NODE_FLAGS=1:
 * none, to measure what the flags change.
 */
export function daemonNodeFlags(daemon: 'executor' | 'watcher'): string[] {
  if (process.env.PULLNIX_BENCH_NO_NODE_FLAGS === '1') return [];
  const flags = JSON.parse(readFileSync(new URL('../../../nixos/node-flags.json', import.meta.url), 'utf8')) as Record<string, string[]>;
  return flags[daemon] ?? [];
}

/** Start a node script and wait until it prints a line matching `ready`. */
export async function startNode(script: string, args: string[], ready = /^ready/, env: NodeJS.ProcessEnv = process.env, nodeFlags: readonly string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...nodeFlags, script, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${script} exited ${code} before it was ready`));
    child.once('exit', onExit);
    lines.on('line', (line) => {
      if (ready.test(line)) {
        child.off('exit', onExit);
        resolve();
      }
    });
  });
  return child;
}

export function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}
