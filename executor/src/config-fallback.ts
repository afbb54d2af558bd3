/**
 * The configuration an executor starts on when its own file is unusable (main.ts): the one of
 * the system profile's current generation, i.e. the last system pullnix (or an administrator)
 * committed, which passed verification before it became the profile. NixOS links the
 * toplevel's etc/ into the system (nixos/modules/system/activation/top-level.nix), so the file
 * is `<profile>/etc/pullnix/config.json`. The profile is the unusable file's own
 * `paths.systemProfile` when that much of it can be read (the rest may be what is wrong), else
 * NixOS's default profile.
 */
import { readFileSync } from 'node:fs';

export const DEFAULT_SYSTEM_PROFILE = '/nix/var/nix/profiles/system';

export function committedConfigPath(unusableFile: string): string {
  return `${systemProfileOf(unusableFile) ?? DEFAULT_SYSTEM_PROFILE}/etc/pullnix/config.json`;
}

/** `paths.systemProfile` of a configuration file that may not load (an absolute path only); null if there is none to read. */
function systemProfileOf(file: string): string | null {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as { paths?: { systemProfile?: unknown } } | null;
    const profile = raw?.paths?.systemProfile;
    return typeof profile === 'string' && profile.startsWith('/') && !profile.includes('\0') ? profile.replace(/\/+$/, '') : null;
  } catch {
    return null;
  }
}
