/**
 * The short chaos campaign CI runs (issue 15): seed ci-18, 10 steps, 4 faults, on one machine.
 * The seed was picked (from the plans alone, `npm run chaos -- --plan`) because its 4 faults
 * cover the paths the review found broken: a power cut while a burst's deployment activates,
 * the executor SIGKILLed while a failing unit's activation runs (issue 10 item 1: recovery must
 * not commit it), the watcher SIGKILLed just after a deployment was accepted, a power cut while
 * a failing activation runs; plus a burst with a self-upgrade and every commit kind.
 * A violation fails the test with the replay command, the journal and the history (see
 * docs/chaos.md); the long campaign's figures are in docs/chaos.md too.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFaults } from '../chaos/plan.ts';
import { DEFAULTS, replayCommand, runCampaign, summarize } from '../chaos/runner.ts';

const SEED = 'ci-18';
const STEPS = 10;
const FAULTS = 4;

test(`chaos campaign (short): seed ${SEED}, ${STEPS} steps, ${FAULTS} faults — every invariant holds after every step`, { timeout: 900_000 }, async (t) => {
  const faults = parseFaults(String(FAULTS), STEPS);
  const result = await runCampaign({ seed: SEED, deployments: STEPS, faults, fromStep: 1, keepGoing: false, ...DEFAULTS, name: 'chaos-ci', log: (line) => t.diagnostic(line) });
  t.diagnostic(summarize(result.figures));
  const where = result.evidence ? `\njournal: ${result.evidence.journal}\nhistory: ${result.evidence.history}` : '';
  assert.equal(result.error, null, `the campaign could not run: ${result.error?.stack ?? ''}${where}`);
  const first = result.violations[0];
  assert.ok(
    first === undefined,
    first && `invariant ${first.check.n} broken at step ${first.step}: ${first.check.text}${where}\nreplay: ${replayCommand({ seed: SEED, deployments: STEPS, faults }, first.step)}`,
  );
  assert.equal(result.figures.steps, STEPS, 'every step ran');
  assert.equal(Object.values(result.figures.faults).reduce((a, b) => a + b, 0), FAULTS, 'every planned fault was delivered');
  assert.ok(result.figures.convergence?.latencyMs != null, 'convergence was measured');
});
