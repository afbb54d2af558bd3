/**
 * An http check's `bodyPattern`, matched off root's event loop. The pattern comes from the
 * configuration (a commit) and the body from the network: a pattern that backtracks
 * catastrophically on the body (`^(a+)+$` against `aaaa…b`) would otherwise hold the executor's
 * only thread for minutes, on every attempt and again in the recovery after a restart. It runs in
 * a worker thread with a small heap, stopped (Worker.terminate interrupts a running match) after
 * BODY_MATCH_LIMIT_MS: a pattern that needs longer on at most 64 KiB is broken, and fails the check.
 */
import { Worker } from 'node:worker_threads';

export const BODY_MATCH_LIMIT_MS = 1000;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
parentPort.postMessage(new RegExp(workerData.pattern).test(workerData.body));
`;

export type BodyMatch = { matched: boolean } | { error: string };

export function matchBody(pattern: string, body: string, limitMs = BODY_MATCH_LIMIT_MS): Promise<BodyMatch> {
  return new Promise((resolve) => {
    const worker = new Worker(WORKER, { eval: true, workerData: { pattern, body }, resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } });
    let settled = false;
    const settle = (answer: BodyMatch) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(answer);
    };
    const timer = setTimeout(() => settle({ error: `the body pattern /${pattern}/ did not finish within ${limitMs} ms on a ${Buffer.byteLength(body)}-byte body (catastrophic backtracking?)` }), limitMs);
    worker.once('message', (matched: unknown) => settle({ matched: matched === true }));
    worker.once('error', (error: Error) => settle({ error: `the body pattern /${pattern}/ could not be matched: ${error.message}` }));
    worker.once('exit', (code) => settle({ error: `the body pattern /${pattern}/ could not be matched: its worker exited ${code}` }));
  });
}
