/**
 * An `http` check: GET the URL with Node's fetch (redirects followed); it passes on the expected
 * status (default any 2xx) and, when a body pattern is set, a body that matches it.
 */
import type { CheckConfig } from '@pullnix/shared';
import { attemptSignal, type Check } from './check.ts';

/** Bytes of a body kept for matching and for the error message. */
const MAX_BODY_CHARS = 64 * 1024;

export function httpCheck(name: string, check: CheckConfig): Check {
  const url = check.url!;
  const pattern = check.bodyPattern === null ? null : new RegExp(check.bodyPattern);
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
        body = (await res.text()).slice(0, MAX_BODY_CHARS);
      } catch (error) {
        if (abort.aborted) return { ok: false, error: `no answer within ${timeoutMs} ms` };
        const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
        return { ok: false, error: cause?.code ?? cause?.message ?? (error as Error).message };
      }
      const statusOk = expected === null ? res.status >= 200 && res.status < 300 : res.status === expected;
      if (!statusOk) return { ok: false, error: `status ${res.status}, expected ${expected ?? '2xx'}${snippet(body)}` };
      if (pattern && !pattern.test(body)) return { ok: false, error: `status ${res.status}, but the body does not match /${pattern.source}/${snippet(body)}` };
      return { ok: true };
    },
  };
}

function snippet(body: string): string {
  const text = body.replace(/\s+/g, ' ').trim();
  return text ? `: ${text.length > 200 ? `${text.slice(0, 199)}…` : text}` : '';
}
