/**
 * An `http` check: GET the URL with Node's fetch (redirects followed); it passes on the expected
 * status (default any 2xx) and, when a body pattern is set, a body that matches it. At most
 * MAX_BODY_BYTES of the body are read, while it streams (the rest is never downloaded: an endless
 * or huge body costs root no memory), and the pattern is matched in a worker with a time limit
 * (body-pattern.ts).
 */
import type { CheckConfig } from '@pullnix/shared';
import { matchBody } from './body-pattern.ts';
import { attemptSignal, type Check } from './check.ts';

/** Bytes of a body read for matching and for the error message. */
export const MAX_BODY_BYTES = 64 * 1024;

/** The first `max` bytes of a response body, read as they stream; the rest is cancelled. */
async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value.subarray(0, max - size));
      size += Math.min(value.byteLength, max - size);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

export function httpCheck(name: string, check: CheckConfig): Check {
  const url = check.url!;
  const pattern = check.bodyPattern;
  // A syntax error is found here, in root, where it is cheap; matching is the expensive part.
  if (pattern !== null) new RegExp(pattern);
  const expected = check.expectStatus;
  return {
    name,
    kind: 'http',
    what: `GET ${url}`,
    attemptTimeoutMs: check.timeoutSec * 1000,
    async attempt({ timeoutMs, signal }) {
      const abort = attemptSignal(signal, timeoutMs);
      let res: Response;
      let body: string;
      try {
        res = await fetch(url, { signal: abort, headers: { 'user-agent': 'pullnix-check' } });
        body = await readCapped(res, MAX_BODY_BYTES);
      } catch (error) {
        if (abort.aborted) return { ok: false, error: `no answer within ${timeoutMs} ms` };
        const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
        return { ok: false, error: cause?.code ?? cause?.message ?? (error as Error).message };
      }
      const statusOk = expected === null ? res.status >= 200 && res.status < 300 : res.status === expected;
      if (!statusOk) return { ok: false, error: `status ${res.status}, expected ${expected ?? '2xx'}${snippet(body)}` };
      if (pattern !== null) {
        const match = await matchBody(pattern, body);
        if ('error' in match) return { ok: false, error: `status ${res.status}, but ${match.error}` };
        if (!match.matched) return { ok: false, error: `status ${res.status}, but the body does not match /${pattern}/${snippet(body)}` };
      }
      return { ok: true };
    },
  };
}

function snippet(body: string): string {
  const text = body.replace(/\s+/g, ' ').trim();
  return text ? `: ${text.length > 200 ? `${text.slice(0, 199)}…` : text}` : '';
}
