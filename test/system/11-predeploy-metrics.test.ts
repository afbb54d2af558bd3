/**
 * preDeploy hook and metrics on the real-systemd bed. The configuration has a preDeploy hook that
 * says yes only while /run/bed-go exists (run as a dynamic user through systemd-run), and writes
 * metrics for node_exporter's textfile collector. A real node_exporter (Debian's
 * prometheus-node-exporter) runs inside the machine and is scraped over HTTP; `promtool check
 * metrics` (Debian's prometheus) must accept what it serves.
 *
 *   main: c1 (installed) ─ c2 (held by preDeploy, then deployed) ─ c3 (crash loop: rolled back)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { WATCHER_UID } from './lib/bed.ts';
import { waitFor } from './lib/proc.ts';
import { installed, withBed } from './lib/scenario.ts';
import { CRASH_LOOP_UNIT } from './lib/units.ts';

const METRICS_DIR = '/var/lib/bed-metrics';
const config = { hooks: { preDeploy: { argv: ['/bin/test', '-e', '/run/bed-go'], timeoutSec: 10 } }, metrics: { textfileDirectory: METRICS_DIR } };

const NEEDS = ['/usr/bin/prometheus-node-exporter', '/usr/bin/promtool'].filter((f) => !existsSync(f));

test('preDeploy holds a deployment until it says yes; node_exporter serves the right pullnix metrics after a deploy and a rollback', { timeout: 400_000 }, async (t) => {
  assert.deepEqual(NEEDS, [], 'this scenario needs Debian packages prometheus-node-exporter and prometheus (promtool): apt-get install -y prometheus prometheus-node-exporter');
  await withBed(t, { name: 'predeploy-metrics', verifyTimeoutSec: 8 }, async (bed) => {
    const go = (yes: boolean) => bed.container.execOk(yes ? ['touch', '/run/bed-go'] : ['rm', '-f', '/run/bed-go']);
    const first = await installed(bed, { spec: { label: 'gen1', config }, beforeInstall: async () => {
      await go(true);
      // What the module's tmpfiles rule made before issue 21 (0775, not sticky): the watcher (its own
      // user) may write its .prom file here. The executor makes it sticky itself.
      await bed.container.execOk(['install', '-d', '-m', '0775', '-o', 'root', '-g', 'pullnix-watcher', METRICS_DIR]);
    } });
    // node_exporter as a user of its own (as on NixOS: services.prometheus.exporters.node runs as
    // its own user), so each .prom file must be readable by others.
    await bed.container.execOk([
      'systemd-run', '--unit=bed-node-exporter', '-p', 'DynamicUser=yes', '/usr/bin/prometheus-node-exporter', '--web.listen-address=127.0.0.1:9100',
      '--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${METRICS_DIR}`,
    ]);
    const scrape = () => bed.container.execOk(['/opt/node/bin/node', '-e', "fetch('http://127.0.0.1:9100/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
    const value = (text: string, series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };

    // (3) not now: the new head is built, the hook says no at every poll, nothing is deployed
    await go(false);
    const c2 = await bed.commit({ label: 'gen2', config }, 'a change to hold');
    const postponed = async () => (await bed.journal(['pullnix-watcher.service'])).filter((e) => e.event === 'deploy.postponed' && e.fields.commit === c2).length;
    await waitFor('two postponements of c2', async () => (await postponed()) >= 2, { timeoutMs: 90_000 });
    assert.equal(bed.deploymentsOf(c2).length, 0, 'nothing was asked of the executor');
    assert.ok(bed.history().every((r) => r.outcome !== 'rolled-back'), 'a postponement is not a failure');
    const held = await waitFor('the watcher metrics count postponements', async () => {
      const text = await scrape();
      return (value(text, 'pullnix_predeploy_postponed_total') ?? 0) >= 1 && value(text, 'pullnix_drift') === 1 ? text : undefined;
    }, { timeoutMs: 30_000 });
    assert.ok(held.includes(`pullnix_remote_head_info{commit="${c2}"} 1`), 'remote head');

    await go(true);
    const deployed = await bed.waitForOutcome(c2);
    assert.equal(deployed.outcome, 'succeeded');
    await bed.waitForWatcherRestart(deployed.id);

    // a rollback
    const c3 = await bed.commit({ label: 'gen3-crashy', config, extraUnits: { 'crashy.service': CRASH_LOOP_UNIT } }, 'crash loop');
    const rolled = await bed.waitForOutcome(c3);
    assert.equal(rolled.outcome, 'rolled-back');
    await bed.waitForWatcherRestart(rolled.id);

    // The watcher's user can neither replace, remove nor squat the executor's file (sticky directory).
    const executorProm = `${METRICS_DIR}/pullnix-executor.prom`;
    assert.equal((await bed.container.execOk(['stat', '-c', '%a', METRICS_DIR])).trim(), '1775', 'the executor made the directory sticky');
    const asWatcher = { user: { uid: WATCHER_UID, gid: WATCHER_UID } };
    const forged = await bed.container.sh(`printf 'pullnix_paused 1\\n' > ${METRICS_DIR}/forged.tmp && mv -f ${METRICS_DIR}/forged.tmp ${executorProm}`, asWatcher);
    assert.notEqual(forged.code, 0, `the watcher replaced the executor's file: ${forged.stderr}`);
    assert.notEqual((await bed.container.exec(['rm', '-f', executorProm], asWatcher)).code, 0, "the watcher removed the executor's file");
    await bed.container.exec(['rm', '-f', `${METRICS_DIR}/forged.tmp`], asWatcher);
    assert.equal((await bed.container.execOk(['stat', '-c', '%u %a', executorProm])).trim(), '0 644');
    assert.equal((await bed.container.execOk(['stat', '-c', '%u %a', `${METRICS_DIR}/pullnix-watcher.prom`])).trim(), `${WATCHER_UID} 644`, "the watcher's file is readable by node_exporter's user");

    // (4) node_exporter, scraped over HTTP
    const text = await waitFor('metrics after the rollback', async () => {
      const t = await scrape();
      return value(t, 'pullnix_drift') === 1 && value(t, 'pullnix_deployments_total{outcome="rolled-back"}') === 1 ? t : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(value(text, 'pullnix_deployments_total{outcome="succeeded"}'), 2, 'the adoption of c1 and c2');
    assert.equal(value(text, 'pullnix_deployments_total{outcome="rolled-back"}'), 1);
    assert.ok(text.includes(`pullnix_deployed_info{commit="${c2}",generation="${deployed.generation}",toplevel="${deployed.toplevel}"} 1`), "deployed info (node_exporter sorts labels)");
    assert.equal(value(text, 'pullnix_deployed_generation'), deployed.generation);
    assert.equal(value(text, 'pullnix_paused'), 0);
    assert.equal(value(text, 'pullnix_known_bad_commits'), 1);
    assert.equal(value(text, 'pullnix_reboot_required'), 0);
    assert.equal(value(text, 'pullnix_check_success{check="git",kind="git"}'), 1);
    assert.equal(value(text, 'pullnix_check_success{check="failed-units",kind="units"}'), 0);
    assert.ok((value(text, 'pullnix_verification_duration_seconds') ?? 0) > 0);
    assert.equal(value(text, 'pullnix_last_deployment_timestamp_seconds{outcome="rolled-back"}'), Date.parse(rolled.finishedAt!) / 1000);
    assert.ok(text.includes(`pullnix_remote_head_info{commit="${c3}"} 1`));
    assert.ok((value(text, 'pullnix_last_successful_poll_timestamp_seconds') ?? 0) > Date.parse(rolled.finishedAt!) / 1000 - 1);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);
    t.diagnostic(`first ${first.commit.slice(0, 8)}; promtool: ${(promtool.stdout + promtool.stderr).trim() || 'no complaints'}`);
  });
});
