/**
 * pullnix-ctl's exit codes and its one error type. Scripts switch on the exit code (and, with
 * --json, on `error.code`); people read `message` and then `hint`, which says what to do.
 */
import type { ErrorCode } from '@pullnix/shared/client';

export const EXIT = {
  /** Done; for read commands, the executor answered. */
  ok: 0,
  /** The executor refused or the action failed (its code and reason are shown), or a local action failed. */
  failed: 1,
  /** The command line is wrong: unknown command or option, bad value. Nothing was sent. */
  usage: 2,
  /** The executor cannot be reached: socket missing, nobody listening, no answer. */
  unreachable: 3,
  /** This user may not talk to the executor: socket permission denied, or no usable operator key. */
  denied: 4,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Codes pullnix-ctl adds to the executor's fixed set, for problems found before or instead of an answer. */
export const CTL_ERROR_CODES = {
  USAGE: 'the command line is wrong',
  UNREACHABLE: 'the executor socket cannot be reached, or the executor did not answer',
  PERMISSION_DENIED: 'this user may not open the executor socket',
  NO_KEY: 'no operator key was found, or the key file cannot be read',
  KEY_EXISTS: 'key create refuses to overwrite an existing file',
  LOCAL: 'a local operation failed (writing a key file, starting journalctl)',
  DEPLOYMENT_FAILED: 'the executor ran the action and the deployment did not succeed',
} as const;

export type CtlErrorCode = keyof typeof CTL_ERROR_CODES;

export class CtlError extends Error {
  readonly code: ErrorCode | CtlErrorCode;
  readonly exitCode: ExitCode;
  readonly hint: string | null;

  constructor(code: ErrorCode | CtlErrorCode, exitCode: ExitCode, message: string, options: { hint?: string | null; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CtlError';
    this.code = code;
    this.exitCode = exitCode;
    this.hint = options.hint ?? null;
  }
}

export function usageError(message: string, hint: string | null = null): CtlError {
  return new CtlError('USAGE', EXIT.usage, message, { hint });
}
