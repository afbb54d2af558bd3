/**
 * `grub-editenv FILE list|unset`: GRUB's environment block. `list` prints one `name=value` a line
 * (GRUB's util/grub-editenv.c); `unset next_entry` forgets a grub-reboot one-shot entry.
 */
import type { Runner, RunResult } from '@pullnix/shared';

export function clearGrubNextEntry(runner: Runner, grubenv: string, timeoutMs = 60_000): Promise<RunResult> {
  return runner(['grub-editenv', grubenv, 'unset', 'next_entry'], { timeoutMs });
}

/** The environment block's variables, or why it could not be read. */
export async function grubEnv(runner: Runner, grubenv: string, timeoutMs = 60_000): Promise<{ env: Map<string, string> } | { problem: string; result: RunResult }> {
  const r = await runner(['grub-editenv', grubenv, 'list'], { timeoutMs });
  if (r.exitCode !== 0) return { problem: `grub-editenv ${grubenv} list failed`, result: r };
  const env = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env.set(line.slice(0, i), line.slice(i + 1));
  }
  return { env };
}
