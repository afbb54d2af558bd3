/**
 * Ed25519 keys. A public key is written `ed25519:<base64url of the 32 raw bytes>` (the form the
 * NixOS option takes); a private key file is JSON `{v, keyId, role?, publicKey, privateKey}` with
 * the PKCS#8 DER in base64, mode 0600.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../fs/atomic.ts';
import { KEY_ID_PATTERN, PUBLIC_KEY_PATTERN } from './grammar.ts';

export interface SigningKey {
  keyId: string;
  privateKey: KeyObject;
  publicKey: string; // ed25519:...
}

interface KeyFile {
  v: 1;
  keyId: string;
  publicKey: string;
  privateKey: string; // PKCS#8 DER, base64
}

const keyIdRe = new RegExp(KEY_ID_PATTERN);
const publicKeyRe = new RegExp(PUBLIC_KEY_PATTERN);

export function generateSigningKey(keyId: string): SigningKey {
  if (!keyIdRe.test(keyId)) throw new Error(`key id ${JSON.stringify(keyId)} must match ${KEY_ID_PATTERN}`);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyId, privateKey, publicKey: encodePublicKey(publicKey) };
}

export function encodePublicKey(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an Ed25519 public key');
  return `ed25519:${jwk.x}`;
}

export function decodePublicKey(text: string): KeyObject {
  if (!publicKeyRe.test(text)) throw new Error(`public key must look like ed25519:<43 base64url characters>, got ${JSON.stringify(text.slice(0, 60))}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: text.slice('ed25519:'.length) }, format: 'jwk' });
}

export function saveSigningKey(path: string, key: SigningKey): void {
  const file: KeyFile = {
    v: 1,
    keyId: key.keyId,
    publicKey: key.publicKey,
    privateKey: key.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
  };
  writeFileAtomic(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
}

export function loadSigningKey(path: string): SigningKey {
  const text = readFileSync(path, 'utf8');
  let file: Partial<KeyFile>;
  try {
    file = JSON.parse(text) as Partial<KeyFile>;
  } catch (cause) {
    throw new Error(`key file ${path} is not JSON`, { cause });
  }
  if (file.v !== 1 || typeof file.keyId !== 'string' || typeof file.privateKey !== 'string' || !keyIdRe.test(file.keyId)) {
    throw new Error(`key file ${path} is not a pullnix key file (want {v: 1, keyId, publicKey, privateKey})`);
  }
  const privateKey = createPrivateKey({ key: Buffer.from(file.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`key file ${path} does not hold an Ed25519 key`);
  const publicKey = encodePublicKey(createPublicKey(privateKey));
  if (file.publicKey !== undefined && file.publicKey !== publicKey) throw new Error(`key file ${path}: publicKey does not match privateKey`);
  return { keyId: file.keyId, privateKey, publicKey };
}

export function signBytes(key: KeyObject, data: string): string {
  return sign(null, Buffer.from(data, 'utf8'), key).toString('base64url');
}

export function verifyBytes(key: KeyObject, data: string, signature: string): boolean {
  const sig = Buffer.from(signature, 'base64url');
  if (sig.length !== 64) return false;
  return verify(null, Buffer.from(data, 'utf8'), key, sig);
}
