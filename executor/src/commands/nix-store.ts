/** `nix-store --check-validity`: is a path a valid (registered, complete) path of this store? */
import type { Runner, RunResult } from '@pullnix/shared';

export function checkValidity(runner: Runner, path: string, timeoutMs = 60_000): Promise<RunResult> {
  return runner(['nix-store', '--check-validity', '--', path], { timeoutMs });
}
