/**
 * The watcher's own signing key, when it runs as a user of its own (`watcher.user`,
 * docs/decisions.md D20): `<watcher stateDir>/watcher.key` (0600, private) and `watcher.pub`
 * (0644, the public half the executor reads). Created on the first start, kept afterwards; a
 * missing public half is written again from the private one.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey, loadSigningKey, saveSigningKey, writeFileAtomic, type Logger, type SigningKey } from '@pullnix/shared';

export const OWN_KEY_ID = 'watcher';

export function ownKeyPaths(stateDir: string): { key: string; pub: string } {
  return { key: join(stateDir, 'watcher.key'), pub: join(stateDir, 'watcher.pub') };
}

export function ensureOwnKey(stateDir: string, logger: Logger): SigningKey {
  const paths = ownKeyPaths(stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  let key: SigningKey;
  if (existsSync(paths.key)) {
    key = loadSigningKey(paths.key);
    if (key.keyId !== OWN_KEY_ID) throw new Error(`key file ${paths.key} holds key id ${JSON.stringify(key.keyId)}; expected ${JSON.stringify(OWN_KEY_ID)}`);
  } else {
    key = generateSigningKey(OWN_KEY_ID);
    saveSigningKey(paths.key, key);
    logger.event('watcher.key_generated', { key: OWN_KEY_ID, file: paths.key, public: paths.pub });
  }
  const line = `${key.publicKey}\n`;
  if (!existsSync(paths.pub) || readFileSync(paths.pub, 'utf8') !== line) writeFileAtomic(paths.pub, line, { mode: 0o644 });
  return key;
}
