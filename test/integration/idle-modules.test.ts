/**
 * What an idle machine's daemons load (docs/benchmarks.md, the idle machine): the real executor
 * and watcher processes, the watcher's first poll a no-op (the remote's head is the deployed
 * commit), every module either resolves recorded by a preload (test/lib/module-log.ts).
 *
 * Resident memory is what the goal is about, but it is too noisy to assert on; these are its
 * causes, which are not: ajv's compiler (the validators are generated ahead of time), execa
 * before the first command, and simple-git through Node's ESM-to-CommonJS path, whose export
 * lexer V8 then optimises (~10 MiB kept for the process's life).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { writeHistory } from '../bench/common.ts';
import { GitRemote } from '../lib/git-remote.ts';
import { Daemon, EXECUTOR_MAIN, Machine, WATCHER_MAIN } from '../lib/watcher-machine.ts';
import { waitFor } from '../lib/watcher-fixtures.ts';

const PRELOAD = fileURLToPath(new URL('../lib/module-log.js', import.meta.url));
const CTL_MAIN = fileURLToPath(new URL('../../../executor/dist/src/ctl/main.js', import.meta.url));

/** The packages (node_modules/<name>/...) and files a module list holds. */
function packagesIn(urls: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const url of urls) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url);
    if (!m) continue;
    out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

describe('an idle machine loads only what idling needs', () => {
  it('neither daemon loads ajv (only its small runtime helpers) nor execa; the watcher loads simple-git with require(), not import, and no node-ipc; pullnix-ctl status and history load no package and none of the daemons\' modules', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pullnix-idle-modules-'));
    const remote = new GitRemote({ root: join(dir, 'remote') });
    const machine = new Machine(remote.url);
    const head = remote.commit('c1: configuration', { 'flake.nix': '{ }\n' });
    remote.push();
    // The head is the last successful deployment: the watcher's poll is a no-op.
    mkdirSync(machine.stateDir, { recursive: true });
    writeHistory(join(machine.stateDir, 'history.jsonl'), 3, { lastCommit: head });
    const log = (name: string) => join(dir, `${name}.modules`);
    const start = (main: string, name: string) => new Daemon(main, machine.configPath, { ...machine.env(), NODE_OPTIONS: `--import=${PRELOAD}`, PULLNIX_MODULE_LOG: log(name) });
    const executor = start(EXECUTOR_MAIN, 'executor');
    let watcher: Daemon | undefined;
    try {
      await waitFor('the executor to listen', () => executor.lines('executor.started').length === 1, 60_000);
      watcher = start(WATCHER_MAIN, 'watcher');
      await waitFor('the watcher to poll once (a no-op)', () => watcher!.lines('poll.unchanged').length === 1, 60_000);
      // What an operator's `pullnix-ctl status` and `history` load, answered by this executor.
      const ctlKey = join(machine.stateDir, 'keys', 'local-operator.key');
      for (const command of ['status', 'history']) {
        const out = execFileSync(process.execPath, [CTL_MAIN, command, '--config', machine.configPath, '--key', ctlKey], { env: { ...machine.env(), NODE_OPTIONS: `--import=${PRELOAD}`, PULLNIX_MODULE_LOG: log(`ctl-${command}`) }, encoding: 'utf8' });
        assert.match(out, command === 'status' ? /executor/i : /c1|deploy/i, `pullnix-ctl ${command} answered`);
      }
      assert.equal(await watcher.stop(), 0, watcher.output);
      assert.equal(await executor.stop(), 0, executor.output);

      for (const name of ['executor', 'watcher']) {
        const urls = readFileSync(log(name), 'utf8').split('\n').filter((l) => l !== '');
        assert.ok(urls.some((u) => u.endsWith('/shared/dist/src/index.js')), `${name}: the module log recorded the process's own modules`);
        const packages = packagesIn(urls);
        const ajvFiles = packages.get('ajv') ?? [];
        assert.deepEqual(ajvFiles.filter((f) => !f.startsWith('dist/runtime/') && f !== 'package.json'), [], `${name} loads ajv's compiler; the validators are generated ahead of time (npm run generate)`);
        assert.equal(packages.has('execa'), false, `${name} loads execa before running any command`);
        if (name === 'executor') assert.equal(packages.has('simple-git'), false, 'the executor loads simple-git');
        else {
          assert.equal(packages.has('node-ipc'), false, "the watcher loads node-ipc (its client speaks node-ipc's frames over node:net; only the executor serves with node-ipc)");
          const simpleGit = packages.get('simple-git') ?? [];
          assert.ok(simpleGit.includes('dist/cjs/index.js'), `the watcher ran git through simple-git, loaded with require(): ${simpleGit.join(', ')}`);
          assert.deepEqual(simpleGit.filter((f) => f.startsWith('dist/esm/')), [], 'the watcher imports simple-git as an ES module (its CommonJS dependencies then go through the export lexer)');
        }
      }
      // pullnix-ctl: only what a one-shot request needs (docs/benchmarks.md §5).
      for (const command of ['status', 'history']) {
        const urls = readFileSync(log(`ctl-${command}`), 'utf8').split('\n').filter((l) => l !== '');
        assert.ok(urls.some((u) => u.endsWith('/executor/dist/src/ctl/cli.js')), `ctl ${command}: the module log recorded the CLI's own modules`);
        const packages = packagesIn(urls);
        assert.deepEqual([...packages.keys()].filter((p) => p !== 'ajv'), [], `pullnix-ctl ${command} loads packages beyond ajv's runtime helpers`);
        const loaded = (suffix: string) => urls.some((u) => u.endsWith(suffix));
        for (const file of ['/shared/dist/src/index.js', '/shared/dist/src/protocol/authenticate.js', '/shared/dist/src/generated/protocol-validators.js', '/shared/dist/src/log/logger.js', '/shared/dist/src/protocol/methods/index.js', '/executor/dist/src/ctl/schemas.js']) {
          assert.equal(loaded(file), false, `pullnix-ctl ${command} loads ${file}, which it does not need`);
        }
        assert.equal(loaded('node:child_process') || urls.includes('child_process'), false, `pullnix-ctl ${command} loads node:child_process`);
      }
    } finally {
      await watcher?.stop();
      await executor.stop();
      rmSync(dir, { recursive: true, force: true });
      rmSync(machine.dir, { recursive: true, force: true });
    }
  });
});
