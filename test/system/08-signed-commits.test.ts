/**
 * Scenario 8 — signed commits (trust.mode = all). The machine trusts one SSH key (alice, signed
 * with `ssh-keygen -Y sign` through git) and one OpenPGP key (carol, GnuPG); the watcher checks
 * every new commit with git before it checks out, evaluates or builds anything.
 *
 *   main: c1 (alice, installed) ─ c2 (carol: deployed) ─ c3 (unsigned: refused, named)
 *                                                       ─ c4 (alice, on top of c3: still refused, c3 named)
 *         force-pushed:        c2 ─ c5 (mallory, an unknown key: refused)
 *         force-pushed:        c2 ─ c6 (alice: deployed)
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { GpgSigner, SshSigner } from '../lib/signing.ts';
import { short } from './lib/bed.ts';
import type { TestBed } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';

const alice = new SshSigner('alice');
const carol = new GpgSigner('carol');
const mallory = new SshSigner('mallory');
after(() => {
  for (const s of [alice, carol, mallory]) s.cleanup();
});

const trust = { mode: 'all', allowedSigners: [alice.allowed()], openpgpKeys: [carol.armored] };
const gen = (label: string) => ({ label, config: { trust } });

/** Wait for the watcher's refusal of `head`, then for status to name it. */
async function refused(bed: TestBed, head: string, offending: string, reason: string) {
  const line = await bed.waitForEvent('trust.refused', { commit: head }, { timeoutMs: 60_000, units: ['pullnix-watcher.service'] });
  assert.equal(line.priority, 4, `trust.refused is a warning: ${line.message}`);
  assert.equal(line.fields.offending, offending, line.message);
  assert.equal(line.fields.reason, reason, line.message);
  const status = await waitFor(`status naming the refused range of ${short(head)}`, async () => {
    const s = await bed.status();
    return s.watcher.report?.untrusted?.head === head ? s : undefined;
  });
  assert.equal(status.watcher.report?.untrusted?.commit, offending);
  assert.equal(status.watcher.report?.untrusted?.reason, reason);
  const text = (await bed.ctl(['status'])).stdout;
  assert.match(text, new RegExp(`trust +refused head ${short(head)}: commit ${short(offending)} ${reason}`), text);
  return status;
}

test('signed commits: a signed chain deploys; an unsigned commit, a commit on top of it and a commit by an unknown key are refused before anything is built', { timeout: 600_000 }, async (t) => {
  await withBed(t, { name: 'signed-commits' }, async (bed) => {
    // The first deployment checks the whole history (nothing deployed yet, no trust.since): c1.
    const first = await installed(bed, { spec: gen('gen1'), options: { sign: alice } });
    const c2 = await bed.commit(gen('gen2'), 'carol signs with OpenPGP', { sign: carol });
    const record = await bed.waitForOutcome(c2);
    assert.equal(record.outcome, 'succeeded', JSON.stringify(record));
    const verified = await bed.events('trust.verified', { commit: c2 }, ['pullnix-watcher.service']);
    assert.equal(verified.length, 1);
    assert.equal(verified[0]!.fields.checked, '1', 'the range is c2 alone: it starts at the deployed c1');
    await bed.waitForWatcherRestart(record.id);
    const historyBefore = bed.historyLines();

    // An unsigned commit: refused and named; then a signed commit on top of it: still refused, c3 named.
    const c3 = await bed.commit(gen('gen3'), 'unsigned change');
    await refused(bed, c3, c3, 'unsigned');
    const c4 = await bed.commit(gen('gen4'), 'alice signs on top', { sign: alice });
    const status = await refused(bed, c4, c3, 'unsigned');
    assert.equal(status.deployed?.commit, c2, 'c2 stays deployed');
    assert.equal(status.watcher.report?.lastError?.kind, 'trust');

    // A commit signed by a key nobody configured.
    const c5 = await bed.commit(gen('gen5'), 'mallory signs', { sign: mallory, parent: c2 });
    await refused(bed, c5, c5, 'unknown-key');

    // Nothing of c3, c4, c5 was checked out, built or sent to the executor.
    const watcher = await bed.journal(['pullnix-watcher.service']);
    for (const c of [c3, c4, c5]) {
      assert.equal(watcher.filter((e) => (e.event === 'build.started' || e.event === 'deploy.requested') && e.fields.commit === c).length, 0, `${short(c)} was not built or requested`);
    }
    assert.deepEqual(bed.historyLines(), historyBefore, 'no deployment was recorded');
    assert.equal(await bed.liveSystem(), record.toplevel);

    // A signed head descending from the deployed commit deploys again.
    const c6 = await bed.commit(gen('gen6'), 'alice signs the fix', { sign: alice, parent: c2 });
    const next = await bed.waitForOutcome(c6);
    assert.equal(next.outcome, 'succeeded', JSON.stringify(next));
    assert.equal((await bed.status()).deployed?.commit, c6);
    bed.log(`first=${short(first.commit)} c2=${short(c2)} refused c3=${short(c3)} c4=${short(c4)} c5=${short(c5)}, deployed c6=${short(c6)}`);
  });
});
