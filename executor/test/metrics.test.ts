/** The executor's metrics textfile: rewritten on every change, from the durable history and state. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { MetricsText } from '@pullnix/shared';
import { COMMIT_A, COMMIT_B } from './lib/fake-system.ts';
import { harness, type Harness } from './lib/harness.ts';

let h: Harness | undefined;
afterEach(() => h?.sys.cleanup());

const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('metrics', () => {
  it('text format: HELP and TYPE once per metric, labels escaped', () => {
    const text = new MetricsText().add('x_total', 'counter', 'a "help"\nline', [[{ a: 'q"uo\\te\n' }, 1], [{ a: 'b' }, 2]]).gauge('y', 'y', 0.5).text();
    assert.equal(text, '# HELP x_total a "help"\\nline\n# TYPE x_total counter\nx_total{a="q\\"uo\\\\te\\n"} 1\nx_total{a="b"} 2\n# HELP y y\n# TYPE y gauge\ny 0.5\n');
  });

  it('the executor rewrites pullnix-executor.prom after an outcome, a pause, a resume; counters come from the history', async () => {
    const dir = join(process.env.TMPDIR ?? '/tmp', `pullnix-metrics-${process.pid}-${Date.now()}`);
    h = harness({ metrics: { textfileDirectory: dir } });
    const read = () => readFileSync(join(dir, 'pullnix-executor.prom'), 'utf8');
    assert.equal(value(read(), 'pullnix_deployments_total{outcome="succeeded"}'), 0, 'written at start');

    await h.executor.deploy({ commit: COMMIT_A, toplevel: h.sys.makeSystem('a') }, 'watcher');
    await h.executor.idle();
    const broken = h.sys.makeSystem('b');
    h.sys.networkBreakers.add(broken); // git fails while it is live; the rollback mends it
    const bad = await h.executor.deploy({ commit: COMMIT_B, toplevel: broken }, 'watcher');
    await h.executor.idle();
    let text = read();
    assert.equal(value(text, 'pullnix_deployments_total{outcome="succeeded"}'), 1);
    assert.equal(value(text, 'pullnix_deployments_total{outcome="rolled-back"}'), 1);
    assert.equal(value(text, 'pullnix_last_deployment_timestamp_seconds{outcome="rolled-back"}'), Date.parse(bad.finishedAt!) / 1000);
    assert.equal(value(text, 'pullnix_check_success{check="git",kind="git"}'), 0);
    assert.equal(value(text, 'pullnix_known_bad_commits'), 1);
    assert.equal(value(text, 'pullnix_deployed_generation'), 2);
    assert.ok(text.includes(`pullnix_deployed_info{commit="${COMMIT_A}",`));
    // the failure is tied to its commit (pullnix-promote, docs/rings.md)
    assert.equal(value(text, `pullnix_last_deployment_info{commit="${COMMIT_B}",outcome="rolled-back"}`), 1);
    assert.equal(text.split('\n').filter((l) => l.startsWith('pullnix_last_deployment_info{')).length, 1);
    assert.equal(value(text, 'pullnix_verification_duration_seconds'), 10, 'verify.timeoutSec on the fake clock');

    h.executor.pause('maintenance', 'alice');
    assert.equal(value(read(), 'pullnix_paused'), 1);
    h.executor.resume('alice');
    assert.equal(value(read(), 'pullnix_paused'), 0);

    // a restarted executor counts the same (from history.jsonl), and no temporary file is left
    h.reopen();
    text = read();
    assert.equal(value(text, 'pullnix_deployments_total{outcome="rolled-back"}'), 1);
    assert.deepEqual(readdirSync(dir), ['pullnix-executor.prom']);
    rmSync(dir, { recursive: true, force: true });
  });
});
