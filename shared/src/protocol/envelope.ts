/**
 * The signed envelope `{v, id, method, params, keyId, run, issuedAt, nonce, sig}` and its response.
 * `sig` is an Ed25519 signature over the canonical JSON of the envelope without `sig`. `run` is
 * the executor run the request is meant for (the `hello` the executor sends on every new
 * connection): a request is valid for one executor run only, whatever the clock says.
 */
import { randomBytes } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import type { ErrorData } from './errors.ts';
import { KEY_ID_PATTERN, NONCE_PATTERN, REQUEST_ID_PATTERN, RUN_ID_PATTERN, SIGNATURE_PATTERN } from './grammar.ts';
import { signBytes, type SigningKey } from './keys.ts';
import type { MethodName, Methods } from './methods/index.ts';
import type { ParamsOf, ResultOf } from './method.ts';

/** 2: requests carry the executor's run id (`run`), learnt from the connection's `hello`. */
export const PROTOCOL_VERSION = 2;
/** Largest accepted request, in bytes of its canonical JSON. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/**
 * Largest frame the executor reads from a socket, in raw bytes (node-ipc's `{type, data}` wrapper
 * around a request of MAX_REQUEST_BYTES, with room for JSON escapes). A connection that sends more
 * before a frame delimiter is closed before anything is parsed.
 */
export const MAX_FRAME_IN_BYTES = MAX_REQUEST_BYTES + 16 * 1024;
/** node-ipc event names on the wire. */
export const WIRE = { request: 'pullnix.request', response: 'pullnix.response', push: 'pullnix.push', hello: 'pullnix.hello' } as const;

/** Executor → client, the first frame on every connection: the protocol version and this executor run's id. */
export interface Hello {
  v: number;
  run: string;
}

export interface Envelope<M extends MethodName = MethodName> {
  v: number;
  id: string;
  method: M;
  params: ParamsOf<Methods[M]>;
  keyId: string;
  /** The executor run this request is for (from the connection's hello). */
  run: string;
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
  required: ['v', 'id', 'method', 'params', 'keyId', 'run', 'issuedAt', 'nonce', 'sig'],
  properties: {
    v: { type: 'integer' },
    id: { type: 'string', pattern: REQUEST_ID_PATTERN },
    method: { type: 'string', maxLength: 64 },
    params: { type: 'object' },
    keyId: { type: 'string', pattern: KEY_ID_PATTERN },
    run: { type: 'string', pattern: RUN_ID_PATTERN },
    issuedAt: { type: 'integer', minimum: 0, maximum: 8640000000000000 },
    nonce: { type: 'string', pattern: NONCE_PATTERN },
    sig: { type: 'string', pattern: SIGNATURE_PATTERN },
  },
} as const;

export function newRequestId(): string {
  return randomBytes(9).toString('base64url');
}

/** A fresh executor run id (16 random bytes, base64url). */
export function newRunId(): string {
  return randomBytes(16).toString('base64url');
}

/** Build and sign a request for executor run `run`. */
export function signRequest<M extends MethodName>(
  key: SigningKey,
  run: string,
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
    run,
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
