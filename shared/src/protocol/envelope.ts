/**
 * The signed envelope `{v, id, method, params, keyId, issuedAt, nonce, sig}` and its response.
 * `sig` is an Ed25519 signature over the canonical JSON of the envelope without `sig`.
 */
import { randomBytes } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import type { ErrorData } from './errors.ts';
import { KEY_ID_PATTERN, NONCE_PATTERN, REQUEST_ID_PATTERN, SIGNATURE_PATTERN } from './grammar.ts';
import { signBytes, type SigningKey } from './keys.ts';
import type { MethodName, Methods } from './methods/index.ts';
import type { ParamsOf, ResultOf } from './method.ts';

export const PROTOCOL_VERSION = 1;
/** Largest accepted request, in bytes of its canonical JSON. node-ipc drops frames over 1 MiB outright. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** node-ipc event names on the wire. */
export const WIRE = { request: 'pullnix.request', response: 'pullnix.response', push: 'pullnix.push' } as const;

export interface Envelope<M extends MethodName = MethodName> {
  v: number;
  id: string;
  method: M;
  params: ParamsOf<Methods[M]>;
  keyId: string;
  issuedAt: number; // ms since the epoch
  nonce: string;
  sig: string;
}

export type Response<R = unknown> =
  | { v: number; id: string; ok: true; result: R }
  | { v: number; id: string; ok: false; error: ErrorData };

/** Executor → watcher, unsolicited: run a poll now, or forget a failed commit. */
export type Push = { type: 'sync' } | { type: 'retry'; commit: string };

export const envelopeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'id', 'method', 'params', 'keyId', 'issuedAt', 'nonce', 'sig'],
  properties: {
    v: { type: 'integer' },
    id: { type: 'string', pattern: REQUEST_ID_PATTERN },
    method: { type: 'string', maxLength: 64 },
    params: { type: 'object' },
    keyId: { type: 'string', pattern: KEY_ID_PATTERN },
    issuedAt: { type: 'integer', minimum: 0, maximum: 8640000000000000 },
    nonce: { type: 'string', pattern: NONCE_PATTERN },
    sig: { type: 'string', pattern: SIGNATURE_PATTERN },
  },
} as const;

export function newRequestId(): string {
  return randomBytes(9).toString('base64url');
}

/** Build and sign a request. */
export function signRequest<M extends MethodName>(
  key: SigningKey,
  method: M,
  params: ParamsOf<Methods[M]>,
  options: { now?: number; id?: string; nonce?: string } = {},
): Envelope<M> {
  const unsigned = {
    v: PROTOCOL_VERSION,
    id: options.id ?? newRequestId(),
    method,
    params,
    keyId: key.keyId,
    issuedAt: options.now ?? Date.now(),
    nonce: options.nonce ?? randomBytes(16).toString('base64url'),
  };
  return { ...unsigned, sig: signBytes(key.privateKey, canonicalJson(unsigned)) };
}

export function signingPayload(envelope: Omit<Envelope, 'sig'> & { sig?: unknown }): string {
  const { sig: _sig, ...rest } = envelope;
  return canonicalJson(rest);
}

export type ResultFor<M extends MethodName> = ResultOf<Methods[M]>;
