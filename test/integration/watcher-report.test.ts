/**
 * The watcher with report.enable: each deployment's outcome becomes a commit status at the forge
 * stand-in, a rolled-back one a failure with its reason, and the decentralised halt refuses a
 * commit the ring has already failed, shown in the watcher's report (status). The token file is
 * read by the watcher and appears nowhere else: not in the journal, the metrics, the report or
 * the outbox. Real git, stand-in nix, a fake executor on a real socket.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createRunner } from '@pullnix/shared';
import { CommitStatusReporter, ExecutorLink, GitHubClient, OUTBOX_FILE, Watcher, watcherKeyPath } from '@pullnix/watcher';
import { ForgeStandIn } from '../lib/forge-standin.ts';
import { c1DeployedC2Pushed } from '../lib/watcher-fake-executor.ts';
import { CapturedLog, Fixtures, waitFor, watcherConfig } from '../lib/watcher-fixtures.ts';

const fx = new Fixtures();
fx.installOnPath();
after(() => fx.cleanup());

const TOKEN = 'ghp_watcherReportToken_0123456789abcdef';

async function setup(options: { haltAfter?: number } = {}) {
  const forge = await new ForgeStandIn('github', TOKEN).start();
  const { remote, c2, stateDir, socketPath, executor } = await c1DeployedC2Pushed(() => fx.newStateDir());
  const tokenFile = join(stateDir, 'forge-token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o400 });
  const metricsDir = join(stateDir, 'metrics');
  const report = { enable: true, forge: 'github', apiUrl: forge.apiUrl, repository: 'infra/fleet', tokenFile, ...(options.haltAfter ? { haltAfter: options.haltAfter } : {}) };
  const config = watcherConfig({ url: remote.url, stateDir, socketPath, extra: { report, metrics: { textfileDirectory: metricsDir } } });
  const log = new CapturedLog();
  const controller = new AbortController();
  const link = new ExecutorLink({ socketPath, keyPath: watcherKeyPath(stateDir), logger: log.logger, pid: process.pid, version: 'test', maxBackoffMs: 1000, baseBackoffMs: 20 });
  const reporter = new CommitStatusReporter({ report: config.report, host: 'host-1', ring: null, stateDir, logger: log.logger, now: Date.now });
  const watcher = new Watcher({ config, runner: createRunner(log.logger), logger: log.logger, executor: link, baseBackoffMs: 100, host: 'host-1', reporter });
  const running = link.start(controller.signal);
  await waitFor('the watcher to subscribe', () => link.connected);
  const stop = async () => {
    controller.abort();
    await running;
    executor.stop();
    await forge.stop();
  };
  return { forge, c2, stateDir, metricsDir, executor, log, watcher, reporter, stop };
}

function assertNoToken(where: string, text: string): void {
  assert.ok(!text.includes(TOKEN), `the token is not in ${where}`);
}

describe('watcher: commit statuses at the forge', () => {
  it('a deployment ends in success "deployed generation G, …"; the token is nowhere but the request', async () => {
    const t = await setup();
    try {
      assert.equal((await t.watcher.pollOnce()).outcome, 'deployed');
      await t.reporter.outbox.flush();
      assert.deepEqual(
        t.forge.of(t.c2, 'pullnix/host-1').map((s) => [s.state, s.description]),
        [['success', 'deployed generation 2, 0/0 checks, 0 s']],
      );
      assert.ok(t.forge.requests.every((r) => r.authorization === `Bearer ${TOKEN}`));
      assertNoToken('the journal', t.log.raw.join('\n'));
      assertNoToken('the report (status)', JSON.stringify(t.watcher.report()));
      assertNoToken('the reports the executor got', JSON.stringify(t.executor.reports));
      for (const f of readdirSync(t.metricsDir)) assertNoToken(`the metrics (${f})`, readFileSync(join(t.metricsDir, f), 'utf8'));
      assertNoToken('the outbox', readFileSync(join(t.stateDir, OUTBOX_FILE), 'utf8'));
      assertNoToken('the watcher memory', readFileSync(join(t.stateDir, 'watcher.json'), 'utf8'));
    } finally {
      await t.stop();
    }
  });

  it('a rolled-back deployment ends in failure with the reason', async () => {
    const t = await setup();
    try {
      t.executor.answer = () => 'rolled-back';
      assert.equal((await t.watcher.pollOnce()).outcome, 'deploy-failed');
      await t.reporter.outbox.flush();
      assert.deepEqual(t.forge.of(t.c2, 'pullnix/host-1').map((s) => [s.state, s.description]), [['failure', 'rolled back: verification failed (fake)']]);
    } finally {
      await t.stop();
    }
  });

  it('the decentralised halt: a commit with haltAfter failures of the ring is not deployed, posts nothing, and status says why', async () => {
    const t = await setup({ haltAfter: 2 });
    try {
      const other = new GitHubClient({ apiUrl: t.forge.apiUrl, repository: 'infra/fleet', token: () => TOKEN, timeoutMs: 5000 });
      await other.create(t.c2, { state: 'failure', description: 'rolled back: check http-api: 503', context: 'pullnix/host-2', targetUrl: null });
      assert.equal((await t.watcher.pollOnce()).outcome, 'deployed', 'one failure is under haltAfter');
      const t2 = await setup({ haltAfter: 2 });
      try {
        const other2 = new GitHubClient({ apiUrl: t2.forge.apiUrl, repository: 'infra/fleet', token: () => TOKEN, timeoutMs: 5000 });
        for (const h of ['host-2', 'host-3']) await other2.create(t2.c2, { state: 'failure', description: 'rolled back', context: `pullnix/${h}`, targetUrl: null });
        for (let i = 0; i < 2; i++) assert.equal((await t2.watcher.pollOnce()).outcome, 'halted');
        assert.equal(t2.executor.deploys.length, 0);
        await t2.reporter.outbox.flush();
        assert.deepEqual(t2.forge.of(t2.c2, 'pullnix/host-1').filter((s) => s.state !== 'pending'), [], 'a halted host adds no failure of its own');
        assert.equal(t2.watcher.report().lastError?.message, 'halted: 2 failures in ring (no ring)');
        assert.equal(t2.log.count('report.halted'), 1, 'logged once, not at every poll');
        await waitFor('status to show the halt', () => t2.executor.lastReport?.lastError?.kind === 'halt');
      } finally {
        await t2.stop();
      }
    } finally {
      await t.stop();
    }
  });
});
