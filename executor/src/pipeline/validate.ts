/**
 * Step 1's closure check: the toplevel is a store path of this store that looks like a NixOS
 * system (nixos-rebuild refuses a toplevel without `nixos-version`; activation needs
 * `bin/switch-to-configuration`). The protocol schema already checked the path's grammar.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { PullnixError, type Config } from '@pullnix/shared';

export function checkSystemClosure(config: Config, toplevel: string): void {
  const storeDir = config.paths.storeDir.replace(/\/+$/, '');
  if (!toplevel.startsWith(`${storeDir}/`) || toplevel.slice(storeDir.length + 1).includes('/')) {
    throw new PullnixError('INVALID_SYSTEM', `${toplevel} is not a top-level path in the Nix store ${storeDir}`);
  }
  let isDir: boolean;
  try {
    isDir = statSync(toplevel).isDirectory();
  } catch {
    throw new PullnixError('INVALID_SYSTEM', `${toplevel} does not exist (not built here, or garbage-collected)`);
  }
  if (!isDir) throw new PullnixError('INVALID_SYSTEM', `${toplevel} is not a directory, so not a NixOS system`);
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
