/**
 * The prebuilt manifest (source.mode "prebuilt", docs/prebuilt.md): the file CI commits per host,
 * `hosts/<host>.json` by default, signed with a builder key. Read by the watcher (to know what to
 * fetch) and by the executor (root's own proof that the toplevel asked for is the one the signed
 * commit names). A manifest is untrusted input until its commit's signature is checked, and even
 * then it only names things: every claim in it is checked again (the closure's signatures by Nix,
 * its revision against sourceCommit).
 */
import { isCommit, STORE_PATH_PATTERN } from './protocol/grammar.ts';

export interface Manifest {
  /** The host's system: a top-level store path (`/nix/store/<hash>-nixos-system-…`). */
  toplevel: string;
  /** The configuration commit CI built it from. */
  sourceCommit: string;
}

/** The longest manifest read (a manifest is two short fields). */
export const MANIFEST_MAX_BYTES = 64 * 1024;

export class ManifestError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ManifestError';
  }
}

/** `storeDir`: the store the machine's paths are in (config paths.storeDir; /nix/store on NixOS). */
function isTopLevelIn(path: string, storeDir: string): boolean {
  const dir = storeDir.replace(/\/+$/, '');
  return path.startsWith(`${dir}/`) && new RegExp(STORE_PATH_PATTERN).test(`/nix/store/${path.slice(dir.length + 1)}`);
}

/** Parses and checks a manifest's text; throws ManifestError naming the first problem. */
export function parseManifest(text: string, where: string, storeDir = '/nix/store'): Manifest {
  if (Buffer.byteLength(text) > MANIFEST_MAX_BYTES) throw new ManifestError(`${where}: larger than ${MANIFEST_MAX_BYTES} bytes; a manifest is {"toplevel": …, "sourceCommit": …}`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new ManifestError(`${where}: not valid JSON (${(cause as Error).message})`, { cause });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ManifestError(`${where}: must be a JSON object {"toplevel": …, "sourceCommit": …}`);
  const obj = data as Record<string, unknown>;
  const unknown = Object.keys(obj).filter((k) => k !== 'toplevel' && k !== 'sourceCommit');
  if (unknown.length > 0) throw new ManifestError(`${where}: unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')} (a manifest has toplevel and sourceCommit)`);
  const { toplevel, sourceCommit } = obj;
  if (typeof toplevel !== 'string' || !isTopLevelIn(toplevel, storeDir)) throw new ManifestError(`${where}: toplevel must be a top-level Nix store path (${storeDir}/<hash>-<name>), got ${JSON.stringify(toplevel)}`);
  if (typeof sourceCommit !== 'string' || !isCommit(sourceCommit)) throw new ManifestError(`${where}: sourceCommit must be a full commit id (40 or 64 hex digits), got ${JSON.stringify(sourceCommit)}`);
  return { toplevel, sourceCommit };
}
