/**
 * Errors are data. Every refusal and failure that crosses the socket is `{code, message}` with a
 * code from this fixed set (documented in docs/protocol.md). Clients switch on `code`, never on text.
 */
export const ERROR_CODES = {
  // envelope and authentication: nothing was executed
  BAD_REQUEST: 'the request does not match the protocol schema',
  TOO_LARGE: 'the request is larger than the protocol allows',
  UNSUPPORTED_VERSION: 'unknown protocol version',
  UNKNOWN_METHOD: 'unknown method',
  UNKNOWN_KEY: 'the key id is not known to the executor',
  BAD_SIGNATURE: 'the signature does not verify',
  FORBIDDEN: "the key's role may not call this method",
  STALE: 'issuedAt is outside the accepted window, or the request was signed for another executor run',
  REPLAY: 'this nonce was seen before',
  // the request was understood and refused
  BUSY: 'a deployment is in progress',
  PAUSED: 'deployments are paused',
  KNOWN_BAD: 'this commit failed before and is not retried until an operator says retry',
  INVALID_SYSTEM: 'the toplevel is not a valid NixOS system closure',
  UNTRUSTED: 'trust.mode is on and root could not verify the request itself: the commit is not a signed commit of the branch, the toplevel is not its system, or the check could not run',
  NOT_FOUND: 'no such deployment or commit',
  NO_WATCHER: 'no watcher is connected',
  CONFLICT: 'the request conflicts with the current state',
  // why a deployment did not succeed (DeploymentRecord.error.code; never a refusal)
  ACTIVATION_FAILED: 'switch-to-configuration failed (exit 2 or 4, another exit, a timeout) or could not start',
  VERIFY_FAILED: 'the git connectivity check did not pass within verify.timeoutSec',
  COMMIT_FAILED: 'setting the system profile or the boot entry failed after verification',
  ROLLBACK_FAILED: 're-activating the previous system failed',
  REBOOT_REQUIRED: 'switch-to-configuration exited 100: the system can only be activated by a reboot',
  INTERRUPTED: 'the executor stopped mid-deployment and the system was not live when it came back',
  // the executor could not do it
  INTERNAL: 'internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorData {
  code: ErrorCode;
  message: string;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** An error that carries a protocol error code; what the executor answers with. */
export class PullnixError extends Error {
  readonly code: ErrorCode;
  /**
   * Set on a refusal of a request whose signature verified: the key that signed it. Refusals
   * without it came from a peer that proved nothing (any local process in the operator group).
   */
  readonly verifiedKey: string | null;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; verifiedKey?: string }) {
    super(message, options);
    this.name = 'PullnixError';
    this.code = code;
    this.verifiedKey = options?.verifiedKey ?? null;
  }

  toJSON(): ErrorData {
    return { code: this.code, message: this.message };
  }

  static from(error: unknown): PullnixError {
    if (error instanceof PullnixError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new PullnixError('INTERNAL', message, { cause: error });
  }
}
