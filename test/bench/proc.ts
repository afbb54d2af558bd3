import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Start a node script and wait until it prints a line matching `ready`. */
export async function startNode(script: string, args: string[], ready = /^ready/, env: NodeJS.ProcessEnv = process.env, nodeArgs: readonly string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env });
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
