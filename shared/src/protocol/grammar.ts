/** Value grammars shared by schemas and code. Anchored; no argument ever reaches a shell. */

/** A git object id: SHA-1 (40 hex) or SHA-256 (64 hex), lower case. */
export const COMMIT_PATTERN = '^([0-9a-f]{40}|[0-9a-f]{64})$';

/**
 * A top-level Nix store path: /nix/store/<32 nix-base32 chars>-<name>, name per Nix's grammar
 * (letters, digits, +-._?=, not starting with a dot), no sub-path.
 */
export const STORE_PATH_PATTERN = '^/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\\-_?=][A-Za-z0-9+\\-._?=]{0,210}$';

export const KEY_ID_PATTERN = '^[A-Za-z0-9._@-]{1,64}$';
export const PUBLIC_KEY_PATTERN = '^ed25519:[A-Za-z0-9_-]{43}$';
export const REQUEST_ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const NONCE_PATTERN = '^[A-Za-z0-9_-]{16,64}$';
export const SIGNATURE_PATTERN = '^[A-Za-z0-9_-]{86}$';
/** An executor run id: random at each executor start, learnt from the connection's hello. */
export const RUN_ID_PATTERN = '^[A-Za-z0-9_-]{22}$';

const commitRe = new RegExp(COMMIT_PATTERN);
const storePathRe = new RegExp(STORE_PATH_PATTERN);

export function isCommit(value: string): boolean {
  return commitRe.test(value);
}

export function isStorePath(value: string): boolean {
  return storePathRe.test(value);
}

export function shortCommit(commit: string | null | undefined): string {
  return commit ? commit.slice(0, 8) : '-';
}
