/**
 * A deployment keeps its previous and its new system alive from `accepted` until its outcome:
 * a GC root for each (a symlink into the store under paths.gcRootsDir, which Nix's collector
 * follows), so that a `nix.gc` or a min-free auto-GC during verification cannot delete the system
 * a rollback needs. The previous system need not be in any profile (an operator's
 * `nixos-rebuild test`, or a generation already deleted), and once the new system is live,
 * /run/current-system no longer roots it.
 */
import { mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from '@pullnix/shared';

const ROOT_RE = /^deployment-(\d+)-(previous|new)$/;

export function pinSystems(dir: string, id: number, systems: { previous: string | null; toplevel: string }): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [which, target] of [['previous', systems.previous], ['new', systems.toplevel]] as const) {
    if (target === null) continue;
    const link = join(dir, `deployment-${id}-${which}`);
    rmSync(link, { force: true });
    symlinkSync(target, link);
  }
  fsyncDir(dir);
}

/** Drop the roots of finished deployments (all but `keep`, the one still running, if any). */
export function unpinSystems(dir: string, keep: number | null = null): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = ROOT_RE.exec(name);
    if (m && Number(m[1]) !== keep) rmSync(join(dir, name), { force: true });
  }
}
