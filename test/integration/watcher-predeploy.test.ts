/**
 * hooks.preDeploy, run by the watcher after the build and before the deploy request: a non-zero
 * exit postpones (no request, no failure, asked again at the next poll); exit 0 deploys. Also the
 * watcher's metrics textfile. Real git, stand-in nix, and a stand-in `systemd-run` first on PATH
 * that records its argv and runs the command after `--` with the `--setenv` environment.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createRunner } from '@pullnix/shared';
import { ExecutorLink, Watcher, watcherKeyPath } from '@pullnix/watcher';
import { c1DeployedC2Pushed } from '../lib/watcher-fake-executor.ts';
import { CapturedLog, Fixtures, standInToplevel, waitFor, watcherConfig } from '../lib/watcher-fixtures.ts';

const fx = new Fixtures();
fx.installOnPath();
after(() => fx.cleanup());

const STAND_IN_SYSTEMD_RUN = `#!/bin/sh
here=$(dirname "$0")
{ for a in "$@"; do printf '%s\\037' "$a"; done; printf '\\n'; } >> "$here/systemd-run.calls"
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    --setenv=*) export "\${1#--setenv=}" ;;
    -p) shift ;;
  esac
  shift
done
exec "$@"
`;
writeFileSync(join(fx.bin, 'systemd-run'), STAND_IN_SYSTEMD_RUN);
chmodSync(join(fx.bin, 'systemd-run'), 0o755);

describe('watcher: the preDeploy hook', () => {
  it('"not now" holds the deployment (logged, counted, not a failure) until the hook says yes', async () => {
    // main: c1 (deployed) - *c2
    const { remote, c2, stateDir, socketPath, executor } = await c1DeployedC2Pushed(() => fx.newStateDir());
    const go = join(stateDir, 'go');
    const seen = join(stateDir, 'seen');
    const metricsDir = join(stateDir, 'metrics');
    const hook = { argv: ['/bin/sh', '-c', `echo "$PULLNIX_COMMIT $PULLNIX_TOPLEVEL $PULLNIX_OUTCOME." > ${seen}; test -e ${go}`], timeoutSec: 10 };
    const config = watcherConfig({ url: remote.url, stateDir, socketPath, extra: { hooks: { preDeploy: hook }, metrics: { textfileDirectory: metricsDir } } });
    const log = new CapturedLog();
    const controller = new AbortController();
    const link = new ExecutorLink({ socketPath, keyPath: watcherKeyPath(stateDir), logger: log.logger, pid: process.pid, version: 'test', maxBackoffMs: 1000, baseBackoffMs: 20 });
    const watcher = new Watcher({ config, runner: createRunner(log.logger), logger: log.logger, executor: link, baseBackoffMs: 100 });
    const running = link.start(controller.signal);
    try {
      await waitFor('the watcher to subscribe', () => link.connected);

      for (const n of [1, 2]) {
        const r = await watcher.pollOnce();
        assert.equal(r.outcome, 'postponed');
        assert.equal(log.count('deploy.postponed'), n);
      }
      assert.equal(executor.deploys.length, 0, 'nothing was asked of the executor');
      assert.equal(log.count('build.failed') + log.count('deploy.refused'), 0, 'a postponement is not a failure');
      assert.equal(readFileSync(seen, 'utf8'), `${c2} ${standInToplevel(c2)} .\n`, 'PULLNIX_COMMIT and PULLNIX_TOPLEVEL; no outcome yet');
      const call = readFileSync(join(fx.bin, 'systemd-run.calls'), 'utf8').split('\n')[0]!.split('\x1f');
      assert.ok(call.includes('DynamicUser=yes'), 'a dynamic unprivileged user by default');
      const metrics = readFileSync(join(metricsDir, 'pullnix-watcher.prom'), 'utf8');
      assert.match(metrics, /^pullnix_predeploy_postponed_total 2$/m);
      assert.match(metrics, /^pullnix_drift 1$/m);
      assert.ok(metrics.includes(`pullnix_remote_head_info{commit="${c2}"} 1`));

      writeFileSync(go, '');
      assert.equal((await watcher.pollOnce()).outcome, 'deployed');
      assert.deepEqual(executor.deploys.map((d) => d.commit), [c2]);
      assert.match(readFileSync(join(metricsDir, 'pullnix-watcher.prom'), 'utf8'), /^pullnix_drift 0$/m);
      assert.ok(!existsSync(join(metricsDir, '.pullnix-watcher.prom.tmp')));
    } finally {
      controller.abort();
      await running;
      executor.stop();
    }
  });
});
