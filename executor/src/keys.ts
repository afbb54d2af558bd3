/**
 * The executor's own keys in `<stateDir>/keys/` (0700): `watcher.key` for the watcher and
 * `local-operator.key` so root can use pullnix-ctl with no setup (docs/decisions.md D5).
 * Created on first start; never replaced once present.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, loadSigningKey, saveSigningKey, type Config, type Logger, type SigningKey, type TrustedKey } from '@pullnix/shared';

export const WATCHER_KEY_ID = 'watcher';
export const LOCAL_OPERATOR_KEY_ID = 'local-root';

export interface ExecutorKeys {
  watcher: SigningKey;
  localOperator: SigningKey;
}

export function keysDir(stateDir: string): string {
  return join(stateDir, 'keys');
}

export function ensureKeys(stateDir: string, log: Logger): ExecutorKeys {
  const dir = keysDir(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return {
    watcher: ensureKey(join(dir, 'watcher.key'), WATCHER_KEY_ID, 'watcher', log),
    localOperator: ensureKey(join(dir, 'local-operator.key'), LOCAL_OPERATOR_KEY_ID, 'operator', log),
  };
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
  const trusted: TrustedKey[] = [
    { keyId: keys.watcher.keyId, role: 'watcher', publicKey: keys.watcher.publicKey },
    { keyId: keys.localOperator.keyId, role: 'operator', publicKey: keys.localOperator.publicKey },
  ];
  for (const k of config.operators.keys) {
    if (k.id === WATCHER_KEY_ID || k.id === LOCAL_OPERATOR_KEY_ID) {
      throw new Error(`operators.keys: id ${JSON.stringify(k.id)} is reserved for the executor's own keys; choose another id`);
    }
    trusted.push({ keyId: k.id, role: 'operator', publicKey: k.publicKey });
  }
  return trusted;
}
