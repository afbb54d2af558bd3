/**
 * Step 1's closure check: the toplevel is a valid store path of this store that looks like a
 * NixOS system (nixos-rebuild refuses a toplevel without `nixos-version`; activation needs
 * `bin/switch-to-configuration`). The protocol schema already checked the path's grammar.
 * The path itself must be a real directory registered in the Nix database: a symlink named like a
 * store path (pointing at a writable directory) or a directory Nix does not know would make root
 * run code from outside the store, and the system profile point outside it.
 */
import { accessSync, constants, lstatSync, statSync } from 'node:fs';
import { describeFailure, PullnixError, type Config, type Runner } from '@pullnix/shared';
import { checkValidity } from '../commands/nix-store.ts';

/** The checks that need no command; cheap enough to run before a request is accepted. */
export function checkSystemClosure(config: Config, toplevel: string): void {
  const storeDir = config.paths.storeDir.replace(/\/+$/, '');
  if (!toplevel.startsWith(`${storeDir}/`) || toplevel.slice(storeDir.length + 1).includes('/')) {
    throw new PullnixError('INVALID_SYSTEM', `${toplevel} is not a top-level path in the Nix store ${storeDir}`);
  }
  let stat;
  try {
    stat = lstatSync(toplevel);
  } catch {
    throw new PullnixError('INVALID_SYSTEM', `${toplevel} does not exist (not built here, or garbage-collected)`);
  }
  if (stat.isSymbolicLink()) throw new PullnixError('INVALID_SYSTEM', `${toplevel} is a symbolic link, not a store path: a system is only deployed from the store itself`);
  if (!stat.isDirectory()) throw new PullnixError('INVALID_SYSTEM', `${toplevel} is not a directory, so not a NixOS system`);
  const missing: string[] = [];
  try {
    accessSync(`${toplevel}/bin/switch-to-configuration`, constants.X_OK);
  } catch {
    missing.push('bin/switch-to-configuration (executable)');
  }
  try {
    statSync(`${toplevel}/nixos-version`);
  } catch {
    missing.push('nixos-version');
  }
  if (missing.length > 0) throw new PullnixError('INVALID_SYSTEM', `${toplevel} is not a NixOS system: missing ${missing.join(' and ')}`);
}

/** `nix-store --check-validity`: the path is registered and complete in the Nix database. */
export async function checkStoreValidity(runner: Runner, toplevel: string): Promise<void> {
  const r = await checkValidity(runner, toplevel);
  if (r.exitCode !== 0) throw new PullnixError('INVALID_SYSTEM', `${toplevel} is not a valid path of the Nix store (${describeFailure(r)})`);
}
