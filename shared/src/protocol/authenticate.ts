/**
 * The executor's gate: every check DESIGN.md lists, in an order that does the cheap and
 * unauthenticated work first and never lets an unauthenticated request touch state (the nonce
 * memory is only written after the signature verified).
 */
import type { KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import { MAX_REQUEST_BYTES, PROTOCOL_VERSION, signingPayload, type Envelope } from './envelope.ts';
import { PullnixError, type ErrorCode } from './errors.ts';
import { decodePublicKey, verifyBytes } from './keys.ts';
import type { Role } from './method.ts';
import { isMethodName, METHODS, type MethodName } from './methods/index.ts';
import { validateEnvelope, validateParams, type Validator } from './validators.ts';

export interface TrustedKey {
  keyId: string;
  role: Role;
  publicKey: string;
}

export interface AuthenticatedRequest {
  envelope: Envelope;
  method: MethodName;
  role: Role;
}

export interface AuthenticatorOptions {
  keys: readonly TrustedKey[];
  /** Accepted distance between issuedAt and the executor's clock, either way. */
  windowMs?: number;
  /**
   * Most nonces remembered at once for the keys that share one pool (every key but the watcher's
   * and those in `ownPoolKeyIds`); past it, their new requests are refused BUSY rather than
   * forgetting.
   */
  maxNonces?: number;
  /**
   * Most nonces one key may have remembered at once: past it, that key's requests are refused
   * BUSY, and no other key notices. One operator key cannot fill the memory the others need.
   */
  maxNoncesPerKey?: number;
  /**
   * Keys outside the shared pool, bounded by their own quota only (the watcher's, whatever its
   * id, always is): root's own key, so no operator key, nor all of them, can make root BUSY.
   */
  ownPoolKeyIds?: readonly string[];
  now?: () => number;
  /**
   * This executor run's id (random at start, sent to every connection in its hello). A request
   * signed for another run is refused STALE: the nonce memory lives in memory, so a request
   * captured before a restart must not be accepted after it. Not the wall clock: a clock stepped
   * back after the start must not refuse everything (docs/decisions.md).
   */
  runId: string;
  /**
   * Keys not in `keys`, looked up when a request names them: the watcher's own key, whose public
   * half lives in the watcher's state directory and may be created after the executor started.
   * Returns null for an id it does not know; throws (a reason) when the key cannot be read.
   */
  resolveKey?: (keyId: string) => TrustedKey | null;
}

export class Authenticator {
  readonly windowMs: number;
  private readonly keys = new Map<string, { role: Role; key: KeyObject }>();
  private readonly resolveKey: ((keyId: string) => TrustedKey | null) | null;
  /** The last key each resolved id had, decoded (decoding is the cost worth saving). */
  private readonly resolved = new Map<string, { publicKey: string; role: Role; key: KeyObject }>();
  /** Per key: nonce -> expiry (ms). A replay is the same key and nonce (the signature covers both). */
  private readonly nonces = new Map<string, Map<string, number>>();
  /** Nonces remembered for the keys of the shared pool. */
  private pooled = 0;
  private readonly maxNonces: number;
  private readonly maxNoncesPerKey: number;
  private readonly ownPool: ReadonlySet<string>;
  private readonly now: () => number;
  readonly runId: string;

  constructor(options: AuthenticatorOptions) {
    this.windowMs = options.windowMs ?? 30_000;
    this.maxNonces = options.maxNonces ?? 100_000;
    this.maxNoncesPerKey = options.maxNoncesPerKey ?? Math.min(10_000, this.maxNonces);
    this.ownPool = new Set(options.ownPoolKeyIds ?? []);
    this.now = options.now ?? Date.now;
    this.runId = options.runId;
    this.resolveKey = options.resolveKey ?? null;
    for (const k of options.keys) {
      if (this.keys.has(k.keyId)) throw new Error(`key id ${k.keyId} is configured twice`);
      this.keys.set(k.keyId, { role: k.role, key: decodePublicKey(k.publicKey) });
    }
  }

  /** Throws a PullnixError naming the first problem; returns the request when every check passed. */
  authenticate(data: unknown): AuthenticatedRequest {
    let size: number;
    try {
      size = Buffer.byteLength(canonicalJson(data));
    } catch (cause) {
      throw new PullnixError('BAD_REQUEST', 'request is not plain JSON', { cause });
    }
    if (size > MAX_REQUEST_BYTES) throw new PullnixError('TOO_LARGE', `request is ${size} bytes; at most ${MAX_REQUEST_BYTES} accepted`);
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new PullnixError('BAD_REQUEST', 'request must be a JSON object');
    const v = (data as { v?: unknown }).v;
    if (v !== PROTOCOL_VERSION) throw new PullnixError('UNSUPPORTED_VERSION', `protocol version ${JSON.stringify(v)} is not supported; this executor speaks v${PROTOCOL_VERSION}`);
    if (!validateEnvelope(data)) throw new PullnixError('BAD_REQUEST', `envelope: ${describeAjv(validateEnvelope)}`);
    const envelope = data as Envelope;
    if (!isMethodName(envelope.method)) throw new PullnixError('UNKNOWN_METHOD', `unknown method ${JSON.stringify(envelope.method)}; known: ${Object.keys(METHODS).join(', ')}`);
    const trusted = this.keys.get(envelope.keyId) ?? this.lookUp(envelope.keyId);
    if (!trusted) throw new PullnixError('UNKNOWN_KEY', `key ${JSON.stringify(envelope.keyId)} is not known to this executor`);
    if (!verifyBytes(trusted.key, signingPayload(envelope), envelope.sig)) throw new PullnixError('BAD_SIGNATURE', `signature does not verify for key ${envelope.keyId}`);
    // Authenticated from here on: a refusal names the key that really signed it (verifiedKey).
    const refuse = (code: ErrorCode, message: string) => new PullnixError(code, message, { verifiedKey: envelope.keyId });
    if (envelope.run !== this.runId) {
      throw refuse('STALE', 'signed for another executor run (the executor restarted since the client connected); a request is valid for one executor run only (replay protection): reconnect');
    }
    const now = this.now();
    const skew = envelope.issuedAt - now;
    if (Math.abs(skew) > this.windowMs) {
      throw refuse('STALE', `issuedAt is ${Math.round(skew / 1000)} s from the executor's clock; at most ±${this.windowMs / 1000} s accepted`);
    }
    const pooled = trusted.role !== 'watcher' && !this.ownPool.has(envelope.keyId);
    let mine = this.nonces.get(envelope.keyId);
    if (!mine) this.nonces.set(envelope.keyId, (mine = new Map()));
    this.forgetExpiredNonces(mine, pooled, now, this.maxNoncesPerKey);
    if (mine.has(envelope.nonce)) throw refuse('REPLAY', `nonce ${envelope.nonce} was already used`);
    if (mine.size >= this.maxNoncesPerKey) throw refuse('BUSY', `key ${envelope.keyId} has ${mine.size} requests in the replay window, its quota; try again shortly`);
    if (pooled && this.pooled >= this.maxNonces) {
      for (const [keyId, memory] of this.nonces) if (keyId !== envelope.keyId) this.forgetExpiredNonces(memory, true, now, 0);
      if (this.pooled >= this.maxNonces) throw refuse('BUSY', 'too many requests in the replay window; try again shortly');
    }
    const spec = METHODS[envelope.method];
    if (!(spec.roles as readonly Role[]).includes(trusted.role)) {
      throw refuse('FORBIDDEN', `key ${envelope.keyId} has role ${trusted.role}; ${envelope.method} needs ${spec.roles.join(' or ')}`);
    }
    const validate = validateParams[envelope.method];
    if (!validate(envelope.params)) throw refuse('BAD_REQUEST', `${envelope.method} params: ${describeAjv(validate)}`);
    // Remember the nonce only now: a refused request does not consume it, an accepted one does.
    mine.set(envelope.nonce, envelope.issuedAt + this.windowMs);
    if (pooled) this.pooled++;
    return { envelope, method: envelope.method, role: trusted.role };
  }

  /** A key from resolveKey (decoded once per public key); undefined when there is none. */
  private lookUp(keyId: string): { role: Role; key: KeyObject } | undefined {
    if (!this.resolveKey) return undefined;
    let found: TrustedKey | null;
    try {
      found = this.resolveKey(keyId);
    } catch (error) {
      throw new PullnixError('UNKNOWN_KEY', `key ${JSON.stringify(keyId)} cannot be used: ${(error as Error).message}`);
    }
    if (!found) return undefined;
    const cached = this.resolved.get(keyId);
    if (cached && cached.publicKey === found.publicKey && cached.role === found.role) return cached;
    const entry = { publicKey: found.publicKey, role: found.role, key: decodePublicKey(found.publicKey) };
    this.resolved.set(keyId, entry);
    return entry;
  }

  get rememberedNonces(): number {
    let n = 0;
    for (const memory of this.nonces.values()) n += memory.size;
    return n;
  }

  /** Drop expired nonces; stops at the first live one unless the memory is at `full` or over. */
  private forgetExpiredNonces(memory: Map<string, number>, pooled: boolean, now: number, full: number): void {
    // Map iterates in insertion order and expiries are roughly increasing: stop at the first live one.
    for (const [nonce, expiry] of memory) {
      if (expiry >= now) {
        if (memory.size < full) break;
        continue;
      }
      memory.delete(nonce);
      if (pooled) this.pooled--;
    }
  }
}

export function describeAjv(validate: Validator): string {
  const e = validate.errors?.[0];
  if (!e) return 'invalid';
  const where = e.instancePath || '(root)';
  if (e.keyword === 'additionalProperties') return `${where}: unexpected field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
  if (e.keyword === 'required') return `${where}: missing field ${JSON.stringify((e.params as { missingProperty: string }).missingProperty)}`;
  return `${where} ${e.message ?? 'is invalid'}`;
}
