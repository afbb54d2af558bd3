/**
 * The executor's own keys in `<stateDir>/keys/` (0700): `local-operator.key` so root can use
 * pullnix-ctl with no setup, and `watcher.key` for a watcher that runs as root too (docs/decisions.md
 * D5). Created on first start; never replaced once present.
 *
 * A watcher with a user of its own (`watcher.user`, D20) holds its own key: it creates the pair in
 * its state directory, and the executor reads only the public half (`watcher.pub`), when a request
 * names the key, so it never holds the watcher's private key.
 */
import { chmodSync, closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, loadSigningKey, PUBLIC_KEY_PATTERN, saveSigningKey, writeFileAtomic, type Config, type Logger, type SigningKey, type TrustedKey, type WatcherIdentity } from '@pullnix/shared';

export const WATCHER_KEY_ID = 'watcher';
export const LOCAL_OPERATOR_KEY_ID = 'local-root';

export interface ExecutorKeys {
  /** null: the watcher has a user and a key of its own (watcherKeyResolver). */
  watcher: SigningKey | null;
  localOperator: SigningKey;
}

/** The watcher's own key pair, in its state directory: private (0600) and public (0644) halves. */
export const WATCHER_OWN_KEY_FILE = 'watcher.key';
export const WATCHER_PUBLIC_KEY_FILE = 'watcher.pub';
/** A public key file is one line, `ed25519:<43 characters>`; anything longer is not one. */
const MAX_PUBLIC_KEY_FILE_BYTES = 256;

export function keysDir(stateDir: string): string {
  return join(stateDir, 'keys');
}

export function ensureKeys(stateDir: string, log: Logger, watcher?: WatcherIdentity): ExecutorKeys {
  const dir = keysDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const ownWatcher = watcher !== undefined && watcher.user !== null;
  const legacy = join(dir, 'watcher.key');
  if (ownWatcher && existsSync(legacy)) {
    // From the time the watcher ran as root: that private key must not stay usable.
    rmSync(legacy, { force: true });
    log.event('keys.retired', { key: WATCHER_KEY_ID, file: legacy, reason: `the watcher runs as ${watcher.user} with a key of its own in ${watcher.stateDir}` });
  }
  return {
    watcher: ownWatcher ? null : ensureKey(legacy, WATCHER_KEY_ID, 'watcher', log),
    localOperator: ensureKey(join(dir, 'local-operator.key'), LOCAL_OPERATOR_KEY_ID, 'operator', log),
  };
}

/**
 * The watcher's public key, as root pinned it. `<watcher stateDir>/watcher.pub` is in a directory
 * the watcher's user owns, so it is only a proposal: the first key read from it is copied into
 * root's keys directory (`keys/watcher.pub`, 0600, event keys.watcher_pinned), and from then on
 * only that copy is trusted. A different key in the watcher's file is refused (UNKNOWN_KEY, event
 * keys.watcher_key_changed naming the file, once per proposed key) until an operator accepts it
 * with `pullnix-ctl accept-watcher-key` (as root: it rewrites the pin). Otherwise code running as
 * the watcher's user could mint a key of its own and sign requests with it (issue 21).
 *
 * The watcher's file is opened without following a symbolic link and must be a small regular
 * file owned by that user (or root), holding only the public key format.
 */
export function watcherKeyResolver(options: { stateDir: string; uid: number; keysDir: string; log: Logger }): (keyId: string) => TrustedKey | null {
  const proposed = join(options.stateDir, WATCHER_PUBLIC_KEY_FILE);
  const pin = pinnedWatcherKeyPath(options.keysDir);
  let reported: string | null = null;
  return (keyId) => {
    if (keyId !== WATCHER_KEY_ID) return null;
    const pinned = readPinnedWatcherKey(pin);
    const offered = readPublicKeyFile(proposed, options.uid);
    if (pinned === null) {
      writeFileAtomic(pin, `${offered}\n`, { mode: 0o600 });
      options.log.event('keys.watcher_pinned', { key: WATCHER_KEY_ID, public_key: offered, file: proposed, pin, by: 'first use' });
      return { keyId, role: 'watcher', publicKey: offered };
    }
    if (offered !== pinned) {
      if (reported !== offered) {
        reported = offered;
        options.log.event('keys.watcher_key_changed', { file: proposed, public_key: offered, pinned, pin, fix: 'pullnix-ctl accept-watcher-key, if the watcher made a new key' });
      }
      throw new Error(`${proposed} holds ${offered}, not the watcher key root pinned in ${pin} (${pinned}); refused until an operator runs pullnix-ctl accept-watcher-key`);
    }
    return { keyId, role: 'watcher', publicKey: pinned };
  };
}

/** Root's record of the watcher's public key, in the executor's keys directory. */
export function pinnedWatcherKeyPath(dir: string): string {
  return join(dir, WATCHER_PUBLIC_KEY_FILE);
}

/** The pinned key; null when none was pinned yet. A pin that is not a key is an error, never a reset. */
export function readPinnedWatcherKey(path: string): string | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`the pinned watcher key ${path} cannot be read: ${(error as Error).message}`, { cause: error });
  }
  if (!publicKeyLine.test(text)) throw new Error(`the pinned watcher key ${path} does not hold a public key; remove it or run pullnix-ctl accept-watcher-key`);
  return text.trim();
}

/**
 * `pullnix-ctl accept-watcher-key` (root): pin the key now in the watcher's file. Returns the key
 * pinned and the one it replaced (null: none was pinned).
 */
export function acceptWatcherKey(options: { stateDir: string; uid: number; keysDir: string; log: Logger }): { publicKey: string; replaced: string | null } {
  const pin = pinnedWatcherKeyPath(options.keysDir);
  const proposed = join(options.stateDir, WATCHER_PUBLIC_KEY_FILE);
  let replaced: string | null = null;
  try {
    replaced = readPinnedWatcherKey(pin);
  } catch {
    replaced = null; // an unreadable pin is what is being replaced
  }
  const publicKey = readPublicKeyFile(proposed, options.uid);
  mkdirSync(options.keysDir, { recursive: true, mode: 0o700 });
  writeFileAtomic(pin, `${publicKey}\n`, { mode: 0o600 });
  options.log.event('keys.watcher_pinned', { key: WATCHER_KEY_ID, public_key: publicKey, file: proposed, pin, by: 'operator', replaced });
  return { publicKey, replaced };
}

const publicKeyLine = new RegExp(`${PUBLIC_KEY_PATTERN.replace(/\$$/, '')}\n?$`);

export function readPublicKeyFile(path: string, uid: number): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(code === 'ELOOP' ? `${path} is a symbolic link` : code === 'ENOENT' ? `${path} does not exist (the watcher creates it on its first start)` : `${path}: ${code ?? (error as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    if (st.uid !== uid && st.uid !== 0) throw new Error(`${path} belongs to uid ${st.uid}, not to the watcher's user (${uid})`);
    if (st.size > MAX_PUBLIC_KEY_FILE_BYTES) throw new Error(`${path} is ${st.size} bytes; a public key file is one line`);
    const buffer = Buffer.alloc(MAX_PUBLIC_KEY_FILE_BYTES + 1);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    const text = buffer.subarray(0, n).toString('utf8');
    if (!publicKeyLine.test(text)) throw new Error(`${path} does not hold a public key (ed25519:<43 base64url characters>)`);
    return text.trim();
  } finally {
    closeSync(fd);
  }
}

function ensureKey(path: string, keyId: string, role: string, log: Logger): SigningKey {
  if (existsSync(path)) {
    const key = loadSigningKey(path);
    if (key.keyId !== keyId) throw new Error(`key file ${path} holds key id ${JSON.stringify(key.keyId)}; expected ${JSON.stringify(keyId)}`);
    chmodSync(path, 0o600);
    return key;
  }
  const key = generateSigningKey(keyId);
  saveSigningKey(path, key);
  log.event('keys.generated', { key: keyId, role, file: path });
  return key;
}

/** The executor's two keys plus the configured operators; a configured id clashing with ours is an error. */
export function trustedKeys(config: Config, keys: ExecutorKeys): TrustedKey[] {
  const trusted: TrustedKey[] = [{ keyId: keys.localOperator.keyId, role: 'operator', publicKey: keys.localOperator.publicKey }];
  if (keys.watcher) trusted.push({ keyId: keys.watcher.keyId, role: 'watcher', publicKey: keys.watcher.publicKey });
  for (const k of config.operators.keys) {
    if (k.id === WATCHER_KEY_ID || k.id === LOCAL_OPERATOR_KEY_ID) {
      throw new Error(`operators.keys: id ${JSON.stringify(k.id)} is reserved for the executor's own keys; choose another id`);
    }
    trusted.push({ keyId: k.id, role: 'operator', publicKey: k.publicKey });
  }
  return trusted;
}
