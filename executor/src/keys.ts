/**
 * The executor's own keys in `<stateDir>/keys/` (0700): `local-operator.key` so root can use
 * pullnix-ctl with no setup, and `watcher.key` for a watcher that runs as root too (docs/decisions.md
 * D5). Created on first start; never replaced once present.
 *
 * A watcher with a user of its own (`watcher.user`, D20) holds its own key: it creates the pair in
 * its state directory, and the executor reads only the public half (`watcher.pub`), when a request
 * names the key, so it never holds the watcher's private key.
 */
import { chmodSync, closeSync, constants, existsSync, fstatSync, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, loadSigningKey, PUBLIC_KEY_PATTERN, saveSigningKey, type Config, type Logger, type SigningKey, type TrustedKey, type WatcherIdentity } from '@pullnix/shared';

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
 * The watcher's public key, read from `<watcher stateDir>/watcher.pub` when a request names the
 * watcher key (it may be created after the executor started). The file is in a directory the
 * watcher's user owns, so it is opened without following a symbolic link, must be a small regular
 * file owned by that user (or root), and only the public key format is accepted: whoever can write
 * it holds the watcher's private key anyway, and gets the watcher role, never more.
 */
export function watcherKeyResolver(stateDir: string, uid: number): (keyId: string) => TrustedKey | null {
  const path = join(stateDir, WATCHER_PUBLIC_KEY_FILE);
  return (keyId) => {
    if (keyId !== WATCHER_KEY_ID) return null;
    return { keyId, role: 'watcher', publicKey: readPublicKeyFile(path, uid) };
  };
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
