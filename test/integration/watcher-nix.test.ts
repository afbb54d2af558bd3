/**
 * The watcher's build commands against the real nix (TESTBED.md: flakes and nix-build work here
 * with a plain derivation as the "system"): flake mode from the checkout path, a missing host
 * attribute as a build failure carrying nix's own message, and classic mode through
 * `<nixpkgs/nixos>` (a stand-in nixpkgs whose nixos/default.nix imports <nixos-config>).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { createRunner } from '@pullnix/shared';
import { Watcher } from '@pullnix/watcher';
import { GitRemote } from '../lib/git-remote.ts';
import { FakeExecutor } from '../lib/watcher-fake-executor.ts';
import { CapturedLog, Fixtures, subscribedLink, watcherConfig } from '../lib/watcher-fixtures.ts';
import { e2eUnavailable, Machine, NIX_CONFIG } from '../lib/watcher-machine.ts';

const unavailable = e2eUnavailable();
const fx = new Fixtures();
after(() => fx.cleanup());
const teardowns: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const t of teardowns.splice(0).reverse()) await t();
});

async function rig(remote: GitRemote, build: Record<string, unknown>) {
  const stateDir = fx.newStateDir();
  const socketPath = join(stateDir, 'run', 'executor.sock');
  const config = watcherConfig({ url: remote.url, stateDir, socketPath, build: { extraFlags: [], ...build } });
  const executor = new FakeExecutor({ socketPath, stateDir });
  await executor.start();
  teardowns.push(() => executor.stop());
  const log = new CapturedLog();
  const link = await subscribedLink({ socketPath, stateDir, logger: log.logger, teardowns });
  const watcher = new Watcher({ config, runner: createRunner(log.logger), logger: log.logger, executor: link });
  return { watcher, executor, log, stateDir };
}

describe('watcher builds with the real nix', { skip: unavailable ? `skipped: ${unavailable}` : false }, () => {
  process.env.NIX_CONFIG = NIX_CONFIG;

  it('builds the flake of the checked-out commit, and reports a missing host attribute with nix\'s message', async () => {
    // main: *c1
    const remote = new GitRemote();
    const machine = new Machine(remote.url);
    const c1 = remote.commit('c1', { 'flake.nix': machine.flake('flake-one') });
    remote.push();

    const wrongHost = await rig(remote, { mode: 'flake', host: 'nohost' });
    assert.equal((await wrongHost.watcher.pollOnce()).outcome, 'build-failed');
    const failure = wrongHost.log.events('build.failed')[0];
    assert.equal(failure?.fields.commit, c1);
    assert.match(failure?.fields.error ?? '', /does not provide attribute .*nixosConfigurations\."nohost"/);
    assert.equal(wrongHost.executor.deploys.length, 0);

    const right = await rig(remote, { mode: 'flake', host: 'testhost' });
    assert.equal((await right.watcher.pollOnce()).outcome, 'deployed');
    const toplevel = readlinkSync(join(right.stateDir, 'gcroots', c1));
    assert.deepEqual(right.executor.deploys.map((d) => [d.commit, d.toplevel]), [[c1, toplevel]]);
    assert.equal(readFileSync(join(toplevel, 'nixos-version'), 'utf8'), 'flake-one\n');
  });

  it('a host name with dots is one attribute, quoted as nixos-rebuild does', async () => {
    // main: *c1   (nixosConfigurations."web1.example.com", and a nested decoy
    //              nixosConfigurations.web1.example.com that an unquoted path would build)
    const remote = new GitRemote();
    const machine = new Machine(remote.url);
    const decoy = machine.flake('nested-decoy').match(/derivation \{[\s\S]*?\n    \};/)![0];
    const flake = machine
      .flake('dotted-host')
      .replace('nixosConfigurations.testhost.', 'nixosConfigurations."web1.example.com".')
      .replace('  outputs = { self }: {\n', `  outputs = { self }: {\n    nixosConfigurations.web1.example.com.config.system.build.toplevel = ${decoy}\n`);
    const c1 = remote.commit('c1', { 'flake.nix': flake });
    remote.push();
    const r = await rig(remote, { mode: 'flake', host: 'web1.example.com' });
    assert.equal((await r.watcher.pollOnce()).outcome, 'deployed');
    const toplevel = readlinkSync(join(r.stateDir, 'gcroots', c1));
    assert.equal(readFileSync(join(toplevel, 'nixos-version'), 'utf8'), 'dotted-host\n');
  });

  it('builds a classic configuration through <nixpkgs/nixos> with nixos-config from the checkout', async () => {
    // main: *c1   (hosts/box.nix is the configuration)
    const remote = new GitRemote();
    const machine = new Machine(remote.url);
    const system = machine.flake('classic-one').match(/derivation \{[\s\S]*?\n    \};/)![0].replace(/;$/, '');
    const c1 = remote.commit('c1', { 'hosts/box.nix': `${system}\n` });
    remote.push();
    const nixpkgs = join(fx.root, 'nixpkgs');
    mkdirSync(join(nixpkgs, 'nixos'), { recursive: true });
    writeFileSync(join(nixpkgs, 'nixos', 'default.nix'), '{ configuration ? import <nixos-config> }: { system = configuration; }\n');

    const r = await rig(remote, { mode: 'classic', file: 'hosts/box.nix', extraFlags: ['-I', `nixpkgs=${nixpkgs}`] });
    assert.equal((await r.watcher.pollOnce()).outcome, 'deployed');
    const toplevel = readlinkSync(join(r.stateDir, 'gcroots', c1));
    assert.match(toplevel, /^\/nix\/store\/[0-9a-z]{32}-nixos-system-testhost-classic-one$/);
    assert.equal(readFileSync(join(toplevel, 'nixos-version'), 'utf8'), 'classic-one\n');
    assert.equal(r.executor.deploys[0]?.toplevel, toplevel);
  });
});
