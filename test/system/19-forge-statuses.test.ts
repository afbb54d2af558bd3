/**
 * Scenario 19 — commit statuses at a forge (issue 25 part 1). The forge stand-in
 * (test/lib/forge-standin.ts, GitHub's endpoints) runs inside the machine; the watcher posts a
 * status per deployment step with context pullnix/<host>, its token read from a file only it may
 * read. A deployment posts pending → success; a rolled-back one a failure with the reason; with
 * the forge down during the outcome and the power cut right after it, the status is posted after
 * recovery. In the end: exactly one terminal status per (host, commit), equal to the history; the
 * token in neither the journal, the metrics nor status.
 *
 *   main: c1 (installed) ─ c2 (good) ─ c3 (crash loop: rolled back) ─ c4 (good; forge down, power cut after the outcome)
 */
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cutDescription, describeRecord } from '@pullnix/watcher';
import { HOST, WATCHER_UID, type TestBed } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';
import { CRASH_LOOP_UNIT } from './lib/units.ts';
import type { StoredStatus } from '../lib/forge-standin.ts';

const TOKEN = 'ghp_bedForgeToken_9f8e7d6c5b4a3210';
const PORT = 8088;
const METRICS_DIR = '/var/lib/bed-metrics';
const CONTEXT = `pullnix/${HOST}`;
const config = {
  report: { enable: true, forge: 'github', apiUrl: `http://127.0.0.1:${PORT}`, repository: 'infra/fleet', tokenFile: '/bed/secrets/forge-token' },
  metrics: { textfileDirectory: METRICS_DIR },
};

async function startForge(bed: TestBed): Promise<void> {
  await bed.container.execOk([
    'systemd-run', '--unit=bed-forge', '/opt/node/bin/node', '/opt/pullnix/test/dist/lib/forge-standin-main.js',
    '--kind', 'github', '--port', String(PORT), '--token-file', '/bed/forge-token-root', '--store', '/srv/forge/statuses.json',
  ]);
  await waitFor('the forge stand-in to listen', async () => (await bed.container.exec(['/opt/node/bin/node', '-e', `fetch('http://127.0.0.1:${PORT}/').then(() => process.exit(0), () => process.exit(1))`])).code === 0, { timeoutMs: 30_000 });
}

test('commit statuses: pending → success, a rollback as failure with its reason, exactly one terminal status per commit across a forge outage and a power cut', { timeout: 600_000 }, async (t) => {
  await withBed(t, { name: 'forge-statuses', verifyTimeoutSec: 8 }, async (bed) => {
    // The token: the watcher's alone (as the deploy key), and a root copy for the forge.
    writeFileSync(join(bed.dirs.bed, 'secrets/forge-token'), `${TOKEN}\n`, { mode: 0o400 });
    chownSync(join(bed.dirs.bed, 'secrets/forge-token'), WATCHER_UID, WATCHER_UID);
    writeFileSync(join(bed.dirs.bed, 'forge-token-root'), `${TOKEN}\n`, { mode: 0o400 });
    mkdirSync(join(bed.dirs.srv, 'forge'), { recursive: true });
    const store = join(bed.dirs.srv, 'forge/statuses.json');
    const statuses = (): StoredStatus[] => (existsSync(store) ? (JSON.parse(readFileSync(store, 'utf8')) as StoredStatus[]) : []);
    const of = (commit: string) => statuses().filter((s) => s.sha === commit && s.context === CONTEXT);
    const terminal = (commit: string) => of(commit).filter((s) => s.state !== 'pending');
    const waitTerminal = (commit: string, timeoutMs = 90_000) => waitFor(`a terminal status of ${commit.slice(0, 8)} at the forge`, () => (terminal(commit).length > 0 ? terminal(commit) : undefined), { timeoutMs });

    await installed(bed, {
      spec: { label: 'gen1', config },
      beforeInstall: async () => {
        await bed.container.execOk(['install', '-d', '-m', '0775', '-o', 'root', '-g', 'pullnix-watcher', METRICS_DIR]);
        await startForge(bed);
      },
    });

    // pending → success
    const c2 = await bed.commit({ label: 'gen2', config }, 'a good change');
    const r2 = await bed.waitForOutcome(c2);
    assert.equal(r2.outcome, 'succeeded');
    await waitTerminal(c2);
    const seq2 = of(c2).map((s) => s.state);
    assert.ok(seq2.indexOf('pending') >= 0 && seq2.indexOf('pending') < seq2.indexOf('success'), `pending before success: ${seq2.join(' → ')}`);
    assert.match(terminal(c2)[0]!.description, /^deployed generation \d+, \d+\/\d+ checks, \d+ s$/);
    await bed.waitForWatcherRestart(r2.id);

    // a rollback: failure with the reason pullnix-ctl shows
    const c3 = await bed.commit({ label: 'gen3-crashy', config, extraUnits: { 'crashy.service': CRASH_LOOP_UNIT } }, 'crash loop');
    const r3 = await bed.waitForOutcome(c3);
    assert.equal(r3.outcome, 'rolled-back');
    const [f3] = await waitTerminal(c3);
    assert.equal(f3!.state, 'failure');
    assert.match(f3!.description, /^rolled back: check failed-units: /);
    await bed.waitForWatcherRestart(r3.id);

    // the forge is down when the outcome comes, and the power goes right after it
    await bed.container.execOk(['systemctl', 'stop', 'bed-forge']);
    const c4 = await bed.commit({ label: 'gen4', config }, 'good again, forge down');
    const r4 = await bed.waitForOutcome(c4);
    assert.equal(r4.outcome, 'succeeded');
    await bed.powerCut();
    assert.equal(terminal(c4).length, 0, 'nothing could reach the forge before the cut');
    await bed.boot();
    await startForge(bed);
    await bed.waitForPullnix();
    await waitTerminal(c4, 120_000);

    // exactly one terminal status per (host, commit), equal to the history
    for (const commit of [c2, c3, c4]) {
      const records = bed.deploymentsOf(commit).filter((r) => r.outcome !== null);
      const last = records[records.length - 1]!;
      const want = describeRecord(last)!;
      assert.deepEqual(terminal(commit).map((s) => [s.state, s.description]), [[want.state, cutDescription(want.description)]], `${commit.slice(0, 8)}: ${JSON.stringify(of(commit))}`);
    }
    // nothing more arrives later (a duplicate from a second reconciliation would show here)
    await bed.waitForPullnix();
    for (const commit of [c2, c3, c4]) assert.equal(terminal(commit).length, 1);

    // the token: read by the watcher, never written anywhere else
    const journal = await bed.journal(['pullnix-executor.service', 'pullnix-watcher.service']);
    assert.ok(journal.length > 0);
    assert.ok(!journal.some((e) => e.message.includes(TOKEN)), 'not in the journal');
    assert.ok(!JSON.stringify(await bed.status()).includes(TOKEN), 'not in status');
    const metrics = await bed.container.execOk(['sh', '-c', `cat ${METRICS_DIR}/*.prom`]);
    assert.ok(metrics.includes('pullnix_'), 'the metrics were read');
    assert.ok(!metrics.includes(TOKEN), 'not in the metrics');
    const outbox = await bed.container.execOk(['cat', '/var/lib/pullnix-watcher/report-outbox.json']);
    assert.ok(!outbox.includes(TOKEN), 'not in the outbox');
    t.diagnostic(`statuses at the forge: ${statuses().length}; c4 after the cut: ${of(c4).map((s) => s.state).join(' → ')}`);
  });
});
