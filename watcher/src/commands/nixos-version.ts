/**
 * `<toplevel>/sw/bin/nixos-version --json`: the configuration revision a NixOS system was built
 * from. NixOS writes `system.configurationRevision` (nixos/modules/misc/version.nix: "The Git
 * revision of the top-level flake from which this configuration was built", null by default)
 * into the nixos-version tool: nixos/modules/installer/tools/tools.nix makes it with
 * `json = builtins.toJSON ({ nixosVersion = …; } // optionalAttrs (config.system.configurationRevision
 * != null) { configurationRevision = …; })`, and nixos-version.sh prints that JSON for `--json`;
 * the tool is in environment.systemPackages, hence `<toplevel>/sw/bin/nixos-version`.
 * Run after the closure is fetched (its signatures checked by Nix), before anything is activated.
 */
import { describeFailure, type Runner } from '@pullnix/shared';

export function nixosVersionArgv(toplevel: string): string[] {
  return [`${toplevel}/sw/bin/nixos-version`, '--json'];
}

/** The configurationRevision, null when the system has none; throws when the tool cannot answer. */
export async function configurationRevision(runner: Runner, toplevel: string, signal?: AbortSignal): Promise<string | null> {
  const r = await runner(nixosVersionArgv(toplevel), { timeoutMs: 30_000, killAfterMs: 2000, maxOutputBytes: 64 * 1024, ...(signal ? { signal } : {}) });
  if (r.exitCode !== 0) throw new Error(`${toplevel}/sw/bin/nixos-version --json: ${describeFailure(r)}`);
  let data: unknown;
  try {
    data = JSON.parse(r.stdout);
  } catch (cause) {
    throw new Error(`${toplevel}/sw/bin/nixos-version --json printed no JSON: ${JSON.stringify(r.stdout.slice(0, 200))}`, { cause });
  }
  const rev = (data as { configurationRevision?: unknown } | null)?.configurationRevision;
  return typeof rev === 'string' ? rev : null;
}
