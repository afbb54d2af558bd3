/** `nix-env -p <profile> --set <toplevel>`: makes a system profile generation. */
import { readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Runner, RunResult } from '@pullnix/shared';

export function setProfile(runner: Runner, profile: string, toplevel: string, timeoutMs = 120_000): Promise<RunResult> {
  return runner(['nix-env', '-p', profile, '--set', toplevel], { timeoutMs });
}

/**
 * The generation number the profile points at: `system` -> `system-42-link` gives 42.
 * null when there is no profile yet or it does not look like a Nix profile.
 */
export function profileGeneration(profile: string): number | null {
  let target: string;
  try {
    target = readlinkSync(profile);
  } catch {
    return null;
  }
  const m = /-(\d+)-link$/.exec(basename(target));
  return m ? Number(m[1]) : null;
}

/** `nix-env -p <profile> --switch-generation N`: point the profile back at an existing generation. */
export function switchGeneration(runner: Runner, profile: string, generation: number, timeoutMs = 120_000): Promise<RunResult> {
  return runner(['nix-env', '-p', profile, '--switch-generation', String(generation)], { timeoutMs });
}

/** The system a generation holds (`<profile>-N-link` resolved); null when it is gone. */
export function generationSystem(profile: string, generation: number): string | null {
  try {
    return realpathSync(join(dirname(profile), `${basename(profile)}-${generation}-link`));
  } catch {
    return null;
  }
}
