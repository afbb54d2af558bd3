/**
 * The first hour of docs/nixos.md (steps 2 to 6), executed on the real-systemd bed: every shell
 * block marked `<!-- first-hour: ... -->` is read from the doc and run verbatim (bash -euo
 * pipefail), as root or as the operator alice, and what it prints is checked: the deploy key, the
 * pinned known_hosts, the access check, alice's operator key, the key handed to pullnix-watcher,
 * the units, the first commit deployed and alice's status, a failing commit rolled back, and the
 * metrics as a node_exporter that is not root serves them.
 *
 * On the way it produces the example `pullnix-ctl` output of docs/cli.md (and README.md): every
 * ```console block marked `<!-- bed-example: SITUATION -->` is run in that situation and compared,
 * normalised (test/lib/doc-blocks.ts), with the doc; with PULLNIX_DOCS_REWRITE=1 the doc's blocks
 * are rewritten from the run instead (`npm run docs:examples`).
 *
 * What the bed stands in for is listed in docs/nixos.md ("What the test bed stands in for"): the
 * installation (done first: the git server is a service of the installed system), the git host's
 * deploy key page, the commits, the module's tmpfiles rule and NixOS's node exporter unit.
 *
 *   main: c1 (installed; deployed once alice's steps gave the watcher its key)
 *         ─ c2 (alice's key, metrics, a new package: the executor restarts on it)
 *         ─ c3 (a unit that fails: rolled back)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { firstHourSteps, markedBlocks, normaliseOutput, parseConsole, renderConsole, type ConsoleCommand, type FirstHourStep } from '../lib/doc-blocks.ts';
import { GIT_URL, PULLNIX_GID, REPO_ROOT, UIDS, WATCHER_UID, short, type TestBed } from './lib/bed.ts';
import { waitFor, type RunResult } from './lib/proc.ts';
import { withBed } from './lib/scenario.ts';
import { CRASH_LOOP_UNIT } from './lib/units.ts';

const ALICE = { uid: 1003, gid: 1003, groups: [1003, PULLNIX_GID] };
/** An operator who has no key yet (cli.md's `key create` example). */
const BOB = { uid: 1004, gid: 1004, groups: [1004, PULLNIX_GID] };
const METRICS_DIR = '/var/lib/prometheus-node-exporter-text-files';
const REPO_ENV = { REPO_HOST: '127.0.0.1', REPO_URL: GIT_URL };
/** NixOS puts the system's programs on PATH (/run/current-system/sw/bin). */
const PATH = '/run/current-system/sw/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const STEPS = ['deploy-key', 'known-hosts', 'check-access', 'operator-key', 'first-switch', 'hand-over-key', 'check-units', 'sync', 'first-commit-deployed', 'after-failing-commit', 'metrics'];
const REWRITE = process.env.PULLNIX_DOCS_REWRITE === '1';
const NEEDS = ['/usr/bin/prometheus-node-exporter', '/usr/bin/curl'].filter((f) => !existsSync(f));

const repository = { sshKeyFile: '/etc/pullnix/deploy_key', knownHostsFile: '/etc/pullnix/known_hosts' };

test('the first hour of docs/nixos.md, run verbatim; the pullnix-ctl examples of docs/cli.md from the same run', { timeout: 600_000 }, async (t) => {
  assert.deepEqual(NEEDS, [], 'this scenario needs Debian packages prometheus-node-exporter and curl');
  const steps = firstHourSteps(readFileSync(join(REPO_ROOT, 'docs/nixos.md'), 'utf8'));
  assert.deepEqual(steps.map((s) => s.name), STEPS, 'the walkthrough of docs/nixos.md has these steps, in this order');
  const step = (name: string) => steps.find((s) => s.name === name)!;
  const examples = new Examples(['docs/cli.md', 'README.md']);

  await withBed(t, { name: 'first-hour', verifyTimeoutSec: 10 }, async (bed) => {
    const run = async (s: FirstHourStep): Promise<RunResult> => {
      const r = await bed.container.exec(['bash', '-euo', 'pipefail', '-c', s.script], {
        env: { ...REPO_ENV, PATH, ...(s.user === 'alice' ? { HOME: '/home/alice', USER: 'alice', LOGNAME: 'alice' } : {}) },
        ...(s.user === 'alice' ? { user: ALICE } : {}),
        timeoutMs: 60_000,
      });
      bed.log(`step ${s.name} (as ${s.user}) exited ${r.code}: ${r.stdout.trim().split('\n').slice(-3).join(' | ')}`);
      assert.equal(r.code, 0, `step ${s.name} of docs/nixos.md, run as ${s.user}:\n${s.script}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`);
      return r;
    };

    // Stands in for steps 1 and 5 (the flake, nixos-rebuild): installed first, the git server is part of it.
    const config1 = { repository };
    const c1 = await bed.commit({ label: 'gen1', config: config1 }, 'initial configuration');
    await bed.boot();
    // users.users.alice.extraGroups = [ "pullnix" ] (step 1)
    await bed.container.execOk(['useradd', '-u', String(ALICE.uid), '-U', '-m', '-G', 'pullnix', '-s', '/bin/sh', 'alice']);
    await bed.install(c1);
    await bed.waitForPullnix();

    // 2. the deploy key; the printed public key becomes a read-only deploy key of the git server
    const keyOut = await run(step('deploy-key'));
    const pub = keyOut.stdout.trim().split('\n').pop()!;
    assert.match(pub, /^ssh-ed25519 \S+ pullnix@/, 'cat deploy_key.pub prints the public key');
    appendFileSync(join(bed.dirs.srv, 'gitserver/authorized_keys'), `restrict,command="git-upload-pack '/srv/git/config.git'" ${pub}\n`);

    // 3. known_hosts: the fingerprint printed is the git server's (what the user compares)
    const fp = (await run(step('known-hosts'))).stdout;
    const serverFp = execFileSync('ssh-keygen', ['-lf', join(bed.dirs.srv, 'gitserver/ssh_host_ed25519_key.pub')], { encoding: 'utf8' }).split(' ')[1]!;
    assert.ok(fp.includes(serverFp), `ssh-keygen -lf prints the server's fingerprint ${serverFp}: ${fp}`);
    const access = (await run(step('check-access'))).stdout;
    assert.ok(access.includes(`${c1}\trefs/heads/main`), `git ls-remote with the deploy key lists main at ${short(c1)}: ${access}`);

    // 4. alice's operator key
    const keyShow = (await run(step('operator-key'))).stdout;
    const entry = /\{ id = "([^"]+)"; publicKey = "([^"]+)"; \}/.exec(keyShow);
    assert.ok(entry, `key show prints the entry for operators.keys: ${keyShow}`);
    const aliceKey = { id: entry[1]!, publicKey: entry[2]! };

    // 5. nixos-rebuild is the bed's install(), done above; until the key is handed over the watcher cannot read it
    assert.equal(step('first-switch').script.trim(), 'nixos-rebuild switch --flake .#edge-01');
    assert.equal(step('first-switch').standIn, true);
    await waitFor('the watcher failing as the doc says, before the key is its own', async () => {
      const j = await bed.container.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', 'pullnix-watcher']);
      // (the event's error= field escapes the quotes)
      return /Load key \\?"\/etc\/pullnix\/deploy_key\\?": Permission denied/.test(j.stdout) ? true : undefined;
    }, { timeoutMs: 60_000 });
    assert.equal(bed.deploymentsOf(c1).length, 0, 'nothing deployed while the watcher cannot read the key');
    await run(step('hand-over-key'));
    const stat = (await bed.container.execOk(['stat', '-c', '%u %a', '/etc/pullnix/deploy_key'])).trim();
    assert.equal(stat, `${WATCHER_UID} 400`, 'the deploy key is pullnix-watcher 0400 (docs/security.md)');
    const adopted = await bed.waitForOutcome(c1);
    assert.equal(adopted.outcome, 'succeeded');
    await bed.waitForWatcherRestart(adopted.id);
    const units = (await run(step('check-units'))).stdout;
    assert.equal(units.match(/Active: active \(running\)/g)?.length, 2, `both units run: ${units}`);
    assert.match(units, new RegExp(`deployed\\s+${short(c1)}`), 'pullnix-ctl status shows the deployed commit');

    // 6. the module's tmpfiles rule, and NixOS's node exporter (its own user, not root)
    await bed.container.execOk(['install', '-d', '-m', '1775', '-o', 'root', '-g', 'pullnix-watcher', METRICS_DIR]);
    await bed.container.execOk(['useradd', '-r', '-U', '-M', '-d', '/var/empty', '-s', '/usr/sbin/nologin', 'node-exporter']);
    await bed.container.execOk([
      'systemd-run', '--unit=bed-node-exporter', '-p', 'User=node-exporter', '-p', 'Group=node-exporter', '-p', 'UMask=0077', '-p', 'ProtectSystem=strict',
      '/usr/bin/prometheus-node-exporter', '--web.listen-address=127.0.0.1:9100', '--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${METRICS_DIR}`,
    ]);

    // the first commit: alice's key and metrics (a new package version: on NixOS the changed config changes the units)
    const config2 = { repository, operators: { keys: [aliceKey] }, metrics: { textfileDirectory: METRICS_DIR } };
    const c2 = await bed.commit({ label: 'gen2', pullnixVersion: '2', config: config2 }, 'pullnix: operator alice, metrics');
    await run(step('sync'));
    const second = await bed.waitForOutcome(c2, { timeoutMs: 180_000 });
    assert.equal(second.outcome, 'succeeded', JSON.stringify(second));
    await bed.waitForWatcherRestart(second.id);
    const aliceStatus = (await run(step('first-commit-deployed'))).stdout;
    assert.match(aliceStatus, new RegExp(`deployed\\s+${short(c2)}`), `alice (her key deployed by c2) sees c2 deployed: ${aliceStatus}`);

    // a failing commit and its rollback
    const c3 = await bed.commit({ label: 'gen3-crashy', pullnixVersion: '2', config: config2, extraUnits: { 'crashy.service': CRASH_LOOP_UNIT } }, 'crashy: a new service');
    const failed = await bed.waitForOutcome(c3, { timeoutMs: 180_000 });
    assert.equal(failed.outcome, 'rolled-back');
    await bed.waitForWatcherRestart(failed.id);
    assert.equal(await bed.liveSystem(), second.toplevel, 'the previous system is live again');
    const after = (await run(step('after-failing-commit'))).stdout;
    assert.match(after, new RegExp(`${short(c3)}\\s+deploy\\s+rolled-back`), `history shows c3 rolled back: ${after}`);
    assert.match(after, /failed check\s+failed-units \(units\)/, 'status names the failed check');
    assert.match(after, new RegExp(`known bad\\s+${short(c3)}`), 'status lists c3 as known bad');

    // cli.md's examples, in this state; then the error examples (they stop a daemon and start it again)
    await examples.run('after-rollback', bed);
    await bed.container.execOk(['useradd', '-u', String(BOB.uid), '-U', '-m', '-G', 'pullnix', '-s', '/bin/sh', 'bob']);
    await examples.run('new-operator', bed);
    await examples.run('errors', bed);

    // the metrics, as the non-root node_exporter serves them
    const metrics = await waitFor('node_exporter serving both daemons\' metrics after the rollback', async () => {
      const r = await bed.container.exec(['bash', '-euo', 'pipefail', '-c', step('metrics').script], { env: { ...REPO_ENV, PATH } });
      const out = r.stdout;
      return out.includes('pullnix_deployments_total{outcome="rolled-back"} 1') && out.includes('component="watcher"') ? out : undefined;
    }, { timeoutMs: 30_000, describe: async () => (await bed.container.exec(['sh', '-c', `ls -l ${METRICS_DIR}; curl -s http://127.0.0.1:9100/metrics | grep -E '^node_textfile|^pullnix_build'`])).stdout });
    assert.match(metrics, /^node_textfile_scrape_error 0$/m, 'node_exporter (user node-exporter) reads every file');
    assert.match(metrics, /^pullnix_build_info\{component="executor",/m);
    assert.match(metrics, /^pullnix_known_bad_commits 1$/m);
    const modes = (await bed.container.execOk(['stat', '-c', '%n %a', `${METRICS_DIR}/pullnix-executor.prom`, `${METRICS_DIR}/pullnix-watcher.prom`])).trim().split('\n');
    assert.deepEqual(modes.map((l) => l.split(' ')[1]), ['644', '644'], `docs/metrics.md: each daemon writes its file 0644: ${modes.join(', ')}`);
  }).finally(() => {
    if (REWRITE) examples.rewrite();
  });
  examples.assertSame();
});

/** The ```console blocks marked `<!-- bed-example: SITUATION -->`: run, then compared or rewritten. */
class Examples {
  private readonly docs: { file: string; text: string }[];
  private readonly produced = new Map<string, Map<number, string>>();
  private readonly differences: string[] = [];
  private readonly situations = new Set<string>();

  constructor(files: string[]) {
    this.docs = files.map((file) => ({ file, text: readFileSync(join(REPO_ROOT, file), 'utf8') }));
    for (const d of this.docs) for (const b of markedBlocks(d.text, 'bed-example')) this.situations.add(b.marker);
    assert.deepEqual([...this.situations].sort(), ['after-rollback', 'errors', 'new-operator'], 'the situations the scenario knows how to make');
  }

  async run(situation: string, bed: TestBed): Promise<void> {
    for (const d of this.docs) {
      for (const b of markedBlocks(d.text, 'bed-example').filter((x) => x.marker === situation)) {
        const original = parseConsole(b.text);
        const produced: ConsoleCommand[] = [];
        for (const c of original) produced.push({ ...c, output: await runExample(bed, situation, c) });
        const text = renderConsole(produced, original);
        if (!this.produced.has(d.file)) this.produced.set(d.file, new Map());
        this.produced.get(d.file)!.set(b.start, text);
        if (normaliseOutput(text) !== normaliseOutput(b.text)) this.differences.push(`${d.file}:${b.start + 1}: the doc shows\n${b.text}\n--- a run on the bed gives\n${text}`);
      }
    }
    // At once, so a difference is reported even when a later step fails.
    this.assertSame();
  }

  /** PULLNIX_DOCS_REWRITE=1: the docs' blocks replaced by what the run printed (the blocks it reached). */
  rewrite(): void {
    {
      for (const d of this.docs) {
        const blocks = this.produced.get(d.file);
        if (!blocks) continue;
        if (readFileSync(join(REPO_ROOT, d.file), 'utf8') !== d.text) throw new Error(`${d.file} changed during the run: not rewritten`);
        const lines = d.text.split('\n');
        // From the end, so the line numbers of earlier blocks hold.
        for (const b of markedBlocks(d.text, 'bed-example').reverse()) {
          const text = blocks.get(b.start);
          if (text !== undefined) lines.splice(b.start, b.length, ...text.split('\n').map((l) => (l === '' ? l : `${b.indent}${l}`)));
        }
        writeFileSync(join(REPO_ROOT, d.file), lines.join('\n'));
      }
    }
  }

  assertSame(): void {
    if (REWRITE) return;
    assert.deepEqual(this.differences, [], 'example output in the docs differs from a run on the bed (beyond times, hashes, pids): regenerate with npm run docs:examples');
  }
}

/** One `$ pullnix-ctl ...` of an example, in the situation its comment names; stdout then stderr. */
async function runExample(bed: TestBed, situation: string, c: ConsoleCommand): Promise<string[]> {
  const argv = ['bash', '-c', c.command];
  const env = { PATH };
  let r: RunResult;
  switch (c.comment) {
    case '':
      r = situation === 'new-operator'
        ? await bed.container.exec(argv, { env: { ...env, HOME: '/home/bob', USER: 'bob', LOGNAME: 'bob' }, user: BOB })
        : await bed.container.exec(argv, { env });
      break;
    case 'as a user outside the group': {
      // mallory has a key of her own (not registered) but is not in the operator group
      const outsider = { env: { ...env, HOME: '/tmp/mallory' }, user: { uid: UIDS.mallory, gid: UIDS.mallory } };
      await bed.container.execOk(['pullnix-ctl', 'key', 'create'], outsider);
      r = await bed.container.exec(argv, outsider);
      break;
    }
    case 'pullnix-executor stopped':
    case 'pullnix-watcher stopped': {
      // as the operator alice (her key is registered): the group's socket
      const unit = c.comment.split(' ')[0]!;
      await bed.container.execOk(['systemctl', 'stop', unit]);
      r = await bed.container.exec(argv, { env: { ...env, HOME: '/home/alice', USER: 'alice', LOGNAME: 'alice' }, user: ALICE });
      await bed.container.execOk(['systemctl', 'start', unit]);
      await bed.waitForPullnix();
      break;
    }
    default:
      throw new Error(`a bed example's comment names a situation the scenario cannot make: "${c.comment}"`);
  }
  return `${r.stdout}${r.stderr}`.replace(/\n$/, '').split('\n');
}
