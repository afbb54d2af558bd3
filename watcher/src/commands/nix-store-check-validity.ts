/**
 * `nix-store --check-validity --print-invalid <paths…>`: which of a closure's paths this
 * machine's store lacks (through the nix-daemon, a query only). Nix 2.8's nix-store.cc
 * (opCheckValidity): prints each invalid path with --print-invalid and exits 0.
 */
import { describeFailure, type Runner } from '@pullnix/shared';

export function checkValidityArgv(paths: readonly string[]): string[] {
  return ['nix-store', '--check-validity', '--print-invalid', ...paths];
}

/** The paths of `paths` not valid in the local store. Throws when nix cannot answer. */
export async function missingLocally(runner: Runner, paths: readonly string[], signal?: AbortSignal): Promise<string[]> {
  const missing: string[] = [];
  // A closure can have thousands of paths: a few hundred per command keeps argv well under ARG_MAX.
  for (let i = 0; i < paths.length; i += 500) {
    const r = await runner(checkValidityArgv(paths.slice(i, i + 500)), { timeoutMs: 120_000, killAfterMs: 5000, ...(signal ? { signal } : {}) });
    if (r.exitCode !== 0) throw new Error(`the store's paths could not be checked: ${describeFailure(r)}`);
    missing.push(...r.stdout.split('\n').filter((l) => l.startsWith('/')));
  }
  return missing;
}
