/**
 * Building a commit's system closure: `nix build` (flake mode) or `nix-build '<nixpkgs/nixos>'`
 * (file mode), with an `--out-link` that is the GC root of the result.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Config, Runner, RunResult } from '@pullnix/shared';

/**
 * The build command as an argv array. Flake mode builds from the checkout's PATH, never a
 * `git+file` reference: Nix 2.8 caches branch lookups of those and can build an old commit.
 * The host is quoted, as nixos-rebuild does: `web1.example.com` is one attribute, not three (the
 * schema's pattern for build.host, like a host name, has no `"` that would need escaping).
 */
export function buildArgv(build: Config['build'], checkoutDir: string, outLink: string, host: string = build.host ?? hostname()): string[] {
  if (build.mode === 'flake') {
    return ['nix', 'build', `${checkoutDir}#nixosConfigurations."${host}".config.system.build.toplevel`, '--out-link', outLink, ...build.extraFlags];
  }
  return ['nix-build', '<nixpkgs/nixos>', '-A', 'system', '-I', `nixos-config=${join(checkoutDir, build.file)}`, '--out-link', outLink, ...build.extraFlags];
}

/** Run the build in the checkout, bounded by build.timeoutSec. */
export function nixBuild(runner: Runner, build: Config['build'], argv: readonly string[], checkoutDir: string, signal?: AbortSignal): Promise<RunResult> {
  return runner(argv, { timeoutMs: build.timeoutSec * 1000, killAfterMs: 5000, cwd: checkoutDir, ...(signal ? { signal } : {}) });
}
