/**
 * `nix-store --realise <toplevel> --add-root <gcroot> --option substituters "<caches>"`: fetch a
 * prebuilt closure through the nix-daemon, as the unprivileged watcher. The daemon substitutes it
 * and checks every narinfo's signature against its own trusted-public-keys (require-sigs); the
 * watcher never passes --no-check-sigs nor require-sigs = false, and as a user that is not
 * trusted it could not: the daemon takes only `substituters` listed in its trusted-substituters
 * from such a client (NixOS/nix 2.8.1 src/libstore/daemon.cc l. 211-227, else "ignoring
 * untrusted substituter") and ignores restricted settings (l. 237-248). The root is an indirect
 * GC root registered by the daemon (nix-store.cc l. 93, 112: addPermRoot), made only once the
 * whole closure is valid: a failed fetch leaves no root (the paths it fetched are garbage).
 *
 * Nix's own words for what went wrong (2.8.1):
 *  - src/libstore/build/substitution-goal.cc l. 157: "the substitute for '%s' from '%s' is not
 *    signed by any of the keys in 'trusted-public-keys'" (unsigned, unknown key, or a narinfo
 *    edited after signing: its fingerprint no longer matches the signature);
 *  - src/libstore/local-store.cc l. 1281, 1285: "hash mismatch importing path" / "size mismatch
 *    importing path" (a NAR that is not the one the narinfo describes);
 *  - curl's errors (src/libstore/filetransfer.cc) for a cache that is down: fault.ts.
 */
import { lastLines, type Runner, type RunResult } from '@pullnix/shared';

export function realiseArgv(toplevel: string, gcroot: string, caches: readonly string[]): string[] {
  return ['nix-store', '--realise', toplevel, '--add-root', gcroot, '--option', 'substituters', caches.join(' ')];
}

export type RealiseFailure = 'untrusted-signature' | 'nar-mismatch' | 'other';

export function realiseFailureOf(stderr: string): { kind: RealiseFailure; line: string } {
  const sig = /the substitute for '[^']*' from '[^']*' is not signed by any of the keys in 'trusted-public-keys'/.exec(stderr);
  if (sig) return { kind: 'untrusted-signature', line: sig[0] };
  const mismatch = /(hash|size) mismatch importing path '[^']*'/.exec(stderr);
  if (mismatch) return { kind: 'nar-mismatch', line: mismatch[0] };
  return { kind: 'other', line: lastLines(stderr, 5) };
}

export function realise(runner: Runner, toplevel: string, gcroot: string, caches: readonly string[], options: { timeoutMs: number; signal?: AbortSignal }): Promise<RunResult> {
  return runner(realiseArgv(toplevel, gcroot, caches), { timeoutMs: options.timeoutMs, killAfterMs: 5000, maxOutputBytes: 1024 * 1024, ...(options.signal ? { signal: options.signal } : {}) });
}
