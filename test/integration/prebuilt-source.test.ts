/**
 * The prebuilt source (watcher/src/pipeline/source-prebuilt.ts, issue 23) against the real Nix
 * and real git with real keys: a binary cache made by `nix copy --to file://` and signed with
 * `nix store sign` from a key of `nix-store --generate-binary-cache-key`, the closure fetched by
 * `nix-store --realise` into a store of its own (a chroot store standing for the machine's, with
 * the cache key in its trusted-public-keys and require-sigs on, as the module sets the daemon).
 * Nix itself refuses the edited narinfo and the swapped NAR; the source names what Nix said.
 * Each refusal leaves no GC root.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { createRunner, parseConfig, type Runner } from '@pullnix/shared';
import { PrebuiltSource, Watcher, type PrebuiltResult } from '@pullnix/watcher';
import { Nginx, nginxUnavailable } from '../lib/nginx.ts';
import { FakeExecutor } from '../lib/watcher-fake-executor.ts';
import { subscribedLink, watcherConfig } from '../lib/watcher-fixtures.ts';
import { GitRemote, REAL_GIT } from '../lib/git-remote.ts';
import { SshSigner } from '../lib/signing.ts';
import { CapturedLog } from '../lib/watcher-fixtures.ts';
import { e2eUnavailable, NIX_CONFIG, ROOT } from '../lib/watcher-machine.ts';

const unavailable = e2eUnavailable() ?? nginxUnavailable();
const PUBLISH = join(ROOT, 'nixos/ci/pullnix-publish.sh');

/** Flakes are pure: no builtins.currentSystem. */
function nixSystem(): string {
  return `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux`;
}

/** A flake with one host whose toplevel's nixos-version --json carries self.rev, as NixOS's does with system.configurationRevision = self.rev. */
function flake(tag: string): string {
  return `{
  outputs = { self }: {
    nixosConfigurations.testhost.config.system.build.toplevel = let
      version = builtins.toFile "nixos-version" ''
        #!/bin/sh
        echo '{"nixosVersion":"26.05","configurationRevision":"\${self.rev or "dirty"}"}'
      '';
    in derivation {
      name = "nixos-system-testhost-${tag}-${nonce}"; system = "${nixSystem()}"; builder = "/bin/sh";
      args = [ "-c" "/bin/mkdir -p $out/sw/bin && /bin/sed 's/^ *//' \${version} > $out/sw/bin/nixos-version && /bin/chmod +x $out/sw/bin/nixos-version" ];
    };
  };
}
`;
}
const root = mkdtempSync(join(tmpdir(), 'pullnix-prebuilt-'));
const nonce = `${process.pid}-${Date.now()}`;
const nixEnv = { ...process.env, NIX_CONFIG } as Record<string, string>;
let ci: SshSigner; // the builder key
let alice: SshSigner; // a human key
let cacheKey: { secret: string; public: string };
let otherKey: { secret: string; public: string };

function nix(args: string[], env: Record<string, string> = nixEnv): string {
  return execFileSync(args[0]!, args.slice(1), { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function generateKey(name: string): { secret: string; public: string } {
  const secret = join(root, `${name}.sec`);
  nix(['nix-store', '--generate-binary-cache-key', name, secret, `${secret}.pub`]);
  return { secret, public: readFileSync(`${secret}.pub`, 'utf8').trim() };
}

/**
 * A stand-in NixOS toplevel built by the real nix: a dependency, and `sw/bin/nixos-version`
 * printing the JSON NixOS's nixos-version prints for --json (tools.nix: nixosVersion and, when
 * system.configurationRevision is set, configurationRevision).
 */
function buildSystem(tag: string, revision: string): string {
  const file = join(root, `system-${tag}.nix`);
  writeFileSync(
    file,
    `let
  dep = derivation { name = "pullnix-prebuilt-dep-${tag}-${nonce}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${tag} > $out" ]; };
  version = builtins.toFile "nixos-version" ''
    #!/bin/sh
    echo '{"nixosVersion":"26.05","configurationRevision":"${revision}"}'
  '';
in derivation {
  name = "nixos-system-prebuilt-${tag}-${nonce}"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "/bin/mkdir -p $out/sw/bin && echo ${tag} > $out/nixos-version && /bin/ln -s \${dep} $out/dep && /bin/sed 's/^ *//' \${version} > $out/sw/bin/nixos-version && /bin/chmod +x $out/sw/bin/nixos-version" ];
}
`,
  );
  return nix(['nix-build', file, '--no-out-link']);
}

/** CI's steps: nix copy --to file://, then nix store sign -r in the cache. */
function publish(cache: string, toplevel: string, key: { secret: string } | null): void {
  nix(['nix', 'copy', '--to', `file://${cache}`, toplevel]);
  if (key) nix(['nix', 'store', 'sign', '--store', `file://${cache}`, '-k', key.secret, '-r', toplevel]);
}

interface Rig {
  remote: GitRemote;
  source: PrebuiltSource;
  log: CapturedLog;
  gcroots: string;
  store: string;
}

function rig(options: { caches: string[]; requireSignedSource?: boolean; freeBytes?: () => number; publicKeys?: string[] }): Rig {
  const dir = mkdtempSync(join(root, 'rig-'));
  const remote = new GitRemote({ root: dir });
  const store = join(dir, 'machine-store');
  const gcroots = join(dir, 'gcroots');
  const config = parseConfig(
    JSON.stringify({
      repository: { url: remote.url },
      build: { mode: 'flake', host: 'edge-01', timeoutSec: 120 },
      stateDir: join(dir, 'state'),
      trust: { mode: 'head', allowedSigners: [alice.allowed(), ci.allowed('ci@example.org', {}, 'builder')] },
      source: { mode: 'prebuilt', caches: options.caches, publicKeys: options.publicKeys ?? [cacheKey.public], requireSignedSource: options.requireSignedSource ?? false, freeSpaceMarginMiB: 1 },
    }),
    'test config',
  );
  // The machine's store: its own (chroot) store, trusting the cache key only, signatures required.
  const env = { NIX_REMOTE: store, NIX_CONFIG: `${NIX_CONFIG}\ntrusted-public-keys = ${cacheKey.public}\nrequire-sigs = true` };
  const real = createRunner();
  const runner: Runner = (argv, opts) => real(argv, { ...opts, env: { ...opts.env, ...env } });
  const log = new CapturedLog();
  const gitDir = join(remote.work, '.git');
  const ops = {
    hasCommit: async (c: string) => {
      try {
        execFileSync(REAL_GIT, ['--git-dir', gitDir, 'cat-file', '-e', `${c}^{commit}`], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    },
    isAncestor: async (a: string, d: string) => {
      try {
        execFileSync(REAL_GIT, ['--git-dir', gitDir, 'merge-base', '--is-ancestor', a, d], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    },
  };
  const source = new PrebuiltSource({ config, runner, logger: log.logger, gitDir, gcrootsDir: gcroots, host: 'edge-01', git: ops, trustDir: join(dir, 'trust'), ...(options.freeBytes ? { freeBytes: options.freeBytes } : {}) });
  return { remote, source, log, gcroots, store };
}

/** CI's manifest commit on the branch: hosts/edge-01.json, signed with the builder key (or `by`). */
function manifestCommit(r: Rig, toplevel: string, sourceCommit: string, by: SshSigner = ci): string {
  return r.remote.commit('ci: hosts/edge-01.json', { 'hosts/edge-01.json': `${JSON.stringify({ toplevel, sourceCommit })}\n` }, by);
}

function refusal(r: PrebuiltResult): Extract<PrebuiltResult, { ok: false }> {
  assert.equal(r.ok, false, `expected a refusal, got ${JSON.stringify(r)}`);
  return r as Extract<PrebuiltResult, { ok: false }>;
}

function noRoot(r: Rig): void {
  assert.deepEqual(existsSync(r.gcroots) ? readdirSync(r.gcroots) : [], [], 'no GC root is left');
}

function narinfoOf(cache: string, toplevel: string): string {
  return join(cache, `${toplevel.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`);
}

const teardowns: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const t of teardowns.splice(0).reverse()) await t();
});

describe('the prebuilt source with the real nix, git and keys', { skip: unavailable ? `skipped: ${unavailable}` : false }, () => {
  let good: string; // built from `src`
  let cache: string;
  before(() => {
    ci = new SshSigner('ci', root);
    alice = new SshSigner('alice', root);
    cacheKey = generateKey('ci.example.org-1');
    otherKey = generateKey('intruder-1');
    cache = join(root, 'cache');
  });
  after(() => {
    ci?.cleanup();
    alice?.cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  it('fetches and checks the system CI built: provenance named, a GC root holds it; a manifest before the cache waits, then deploys', async () => {
    const r = rig({ caches: [`file://${cache}`] });
    const src = r.remote.commit('a human change', { 'configuration.nix': '{ }' }, alice);
    good = buildSystem('good', src);
    const head = manifestCommit(r, good, src);
    // The manifest is pushed before CI's copy finished: a wait, not a failure, and no root.
    const early = refusal(await r.source.obtain(head, null));
    assert.equal(early.verdict, 'wait');
    assert.equal(early.reason, 'cache-missing');
    noRoot(r);
    publish(cache, good, cacheKey);
    const ok = await r.source.obtain(head, null);
    assert.ok(ok.ok, JSON.stringify(ok));
    assert.equal(ok.toplevel, good);
    assert.deepEqual(ok.provenance, { toplevel: good, sourceCommit: src, manifestCommit: head, signer: 'ci@example.org', cacheKey: 'ci.example.org-1', cache: `file://${cache}` });
    assert.ok(ok.downloadBytes > 0);
    assert.equal(existsSync(join(r.store, good.slice(1), 'nixos-version')), true, 'the closure is in the machine store');
    assert.equal(readlinkSync(join(r.gcroots, head)), good, 'a GC root holds it');
    assert.equal(r.log.count('prebuilt.fetched'), 1);
  });

  it('refuses a manifest commit signed by a human key, and one with no manifest or a malformed one', async () => {
    const r = rig({ caches: [`file://${cache}`] });
    const src = r.remote.commit('a human change', {}, alice);
    const byHuman = refusal(await r.source.obtain(manifestCommit(r, good, src, alice), null));
    assert.equal(byHuman.reason, 'manifest-untrusted');
    assert.match(byHuman.message, /wrong-role/);
    const empty = rig({ caches: [`file://${cache}`] });
    assert.equal(refusal(await empty.source.obtain(empty.remote.commit('ci: nothing', {}, ci), null)).reason, 'manifest-missing');
    const bad = r.remote.commit('ci: broken', { 'hosts/edge-01.json': '{"toplevel": "/tmp/x", "sourceCommit": "abc"}' }, ci);
    const invalid = refusal(await r.source.obtain(bad, null));
    assert.equal(invalid.reason, 'manifest-invalid');
    assert.match(invalid.message, /toplevel must be a top-level Nix store path/);
    assert.equal(r.log.count('prebuilt.refused'), 2);
    noRoot(r);
  });

  it('requireSignedSource: an unsigned sourceCommit, and one older than the deployed source, are refused', async () => {
    const r = rig({ caches: [`file://${cache}`], requireSignedSource: true });
    const old = r.remote.commit('old human change', {}, alice);
    const unsigned = r.remote.commit('unsigned change', {});
    assert.equal(refusal(await r.source.obtain(manifestCommit(r, good, unsigned), null)).reason, 'source-untrusted');
    const newer = r.remote.commit('newer human change', {}, alice);
    const deployed = manifestCommit(r, good, newer);
    const downgrade = refusal(await r.source.obtain(manifestCommit(r, good, old), deployed));
    assert.equal(downgrade.reason, 'source-older');
    assert.match(downgrade.message, new RegExp(`does not descend from the deployed system's source ${newer}`));
    assert.equal(refusal(await r.source.obtain(manifestCommit(r, good, 'f'.repeat(40)), null)).reason, 'source-missing');
    noRoot(r);
  });

  it('refuses an unsigned path and a path signed by an unknown key before downloading anything', async () => {
    const unsignedCache = join(root, 'cache-unsigned');
    const strangerCache = join(root, 'cache-stranger');
    const r = rig({ caches: [`file://${unsignedCache}`] });
    const src = r.remote.commit('change', {}, alice);
    const system = buildSystem('unsigned', src);
    publish(unsignedCache, system, null);
    const unsigned = refusal(await r.source.obtain(manifestCommit(r, system, src), null));
    assert.equal(unsigned.reason, 'unsigned-path');
    publish(strangerCache, system, otherKey);
    const r2 = rig({ caches: [`file://${strangerCache}`] });
    const src2 = r2.remote.commit('change', {}, alice);
    const stranger = refusal(await r2.source.obtain(manifestCommit(r2, system, src2), null));
    assert.equal(stranger.reason, 'unknown-cache-key');
    assert.match(stranger.message, /signed by intruder-1, none of source.publicKeys \(ci.example.org-1\)/);
    for (const x of [r, r2]) {
      noRoot(x);
      assert.equal(existsSync(join(x.store, system.slice(1))), false, 'nothing was downloaded');
    }
  });

  it('Nix itself refuses a narinfo edited after signing and a NAR swapped behind its narinfo', async () => {
    // The edited narinfo keeps a signature by the right key name: only Nix's check can catch it.
    const edited = join(root, 'cache-edited');
    cpSync(cache, edited, { recursive: true });
    const info = narinfoOf(edited, good);
    writeFileSync(info, readFileSync(info, 'utf8').replace(/^NarSize: (\d+)$/m, (_, n: string) => `NarSize: ${Number(n) + 8}`));
    const r = rig({ caches: [`file://${edited}`] });
    const src = r.remote.commit('change', {}, alice);
    const refusedEdit = refusal(await r.source.obtain(manifestCommit(r, good, src), null));
    assert.equal(refusedEdit.reason, 'bad-signature');
    assert.match(refusedEdit.message, /is not signed by any of the keys in 'trusted-public-keys'/);
    noRoot(r);

    // The swapped NAR: the narinfo (and its signature) intact, the file behind it another path's NAR.
    const swapped = join(root, 'cache-swapped');
    cpSync(cache, swapped, { recursive: true });
    const url = /^URL: (.*)$/m.exec(readFileSync(narinfoOf(swapped, good), 'utf8'))![1]!;
    const dep = readdirSync(swapped).filter((f) => f.endsWith('.narinfo')).map((f) => join(swapped, f)).find((f) => f !== narinfoOf(swapped, good))!;
    const depUrl = /^URL: (.*)$/m.exec(readFileSync(dep, 'utf8'))![1]!;
    cpSync(join(swapped, depUrl), join(swapped, url));
    const r2 = rig({ caches: [`file://${swapped}`] });
    const src2 = r2.remote.commit('change', {}, alice);
    const refusedSwap = refusal(await r2.source.obtain(manifestCommit(r2, good, src2), null));
    assert.equal(refusedSwap.reason, 'nar-mismatch', JSON.stringify(refusedSwap));
    assert.equal(refusedSwap.verdict, 'refuse');
    noRoot(r2);
  });

  it('refuses a closure whose embedded revision is not sourceCommit, and removes its root', async () => {
    const r = rig({ caches: [`file://${cache}`] });
    const src = r.remote.commit('change', {}, alice);
    const mismatch = refusal(await r.source.obtain(manifestCommit(r, good, src), null));
    assert.equal(mismatch.reason, 'revision-mismatch');
    assert.match(mismatch.message, /was built from revision [0-9a-f]{40}, but the manifest says sourceCommit/);
    noRoot(r);
  });

  it("a cache that is down and a store without room are the machine's: retried, nothing fetched", async () => {
    const down = rig({ caches: ['http://127.0.0.1:9'] });
    const src = down.remote.commit('change', {}, alice);
    const unreachable = refusal(await down.source.obtain(manifestCommit(down, good, src), null));
    assert.equal(unreachable.verdict, 'retry');
    assert.equal(unreachable.reason, 'cache-unreachable');
    const full = rig({ caches: [`file://${cache}`], freeBytes: () => 4096 });
    const src2 = full.remote.commit('change', {}, alice);
    const noSpace = refusal(await full.source.obtain(manifestCommit(full, good, src2), null));
    assert.equal(noSpace.verdict, 'retry');
    assert.equal(noSpace.reason, 'no-space');
    assert.match(noSpace.message, /source.freeSpaceMarginMiB 1 MiB to spare/);
    assert.equal(full.log.count('prebuilt.deferred'), 1);
    for (const x of [down, full]) noRoot(x);
  });

  it('the watcher in prebuilt mode deploys what the shipped CI script published, over nginx (git smart HTTP, the cache; the cache down first), with zero evaluations and zero builds, and status names its source', async () => {
    const dir = mkdtempSync(join(root, 'watcher-'));
    const remote = new GitRemote({ root: dir });
    // The configuration: a flake whose toplevel records self.rev as NixOS's configurationRevision.
    const src = remote.commit('a human change', { 'flake.nix': flake('ci-script') }, alice);
    remote.push();
    // CI: nixos/ci/pullnix-publish.sh, the script docs/prebuilt.md gives users, in the checkout.
    const published = execFileSync('bash', [PUBLISH, '--cache', `file://${cache}`, '--key', cacheKey.secret, '--host', 'testhost', '--push', remote.url], {
      cwd: remote.work,
      env: { ...nixEnv, GIT_AUTHOR_NAME: 'ci', GIT_AUTHOR_EMAIL: 'ci@example.org', GIT_COMMITTER_NAME: 'ci', GIT_COMMITTER_EMAIL: 'ci@example.org', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_COUNT: '2', GIT_CONFIG_KEY_0: 'gpg.format', GIT_CONFIG_VALUE_0: 'ssh', GIT_CONFIG_KEY_1: 'user.signingkey', GIT_CONFIG_VALUE_1: join(ci.dir, 'key') },
      encoding: 'utf8',
    }).trim();
    const head = remote.head();
    assert.equal(published, head);
    const manifest = JSON.parse(readFileSync(join(remote.work, 'hosts/testhost.json'), 'utf8')) as { toplevel: string; sourceCommit: string };
    assert.equal(manifest.sourceCommit, src);
    const system = manifest.toplevel;
    // The forge and the cache, over HTTP: nginx serving the repository through git-http-backend
    // (fcgiwrap) and, as a second server, the cache directory.
    const forge = new Nginx({ cacheDir: join(dir, 'none'), gitRoot: dir });
    const cacheServer = new Nginx({ cacheDir: cache, gitRoot: join(dir, 'none') });
    teardowns.push(() => forge.stop(), () => cacheServer.stop());
    await forge.start();
    await cacheServer.start();
    const stateDir = join(dir, 'state');
    const socketPath = join(stateDir, 'run', 'executor.sock');
    const config = watcherConfig({
      url: forge.gitUrl('remote.git'),
      stateDir,
      socketPath,
      extra: {
        trust: { mode: 'all', allowedSigners: [alice.allowed(), ci.allowed('ci@example.org', {}, 'builder')] },
        source: { mode: 'prebuilt', caches: [cacheServer.cacheUrl], publicKeys: [cacheKey.public], requireSignedSource: true, freeSpaceMarginMiB: 1 },
      },
    });
    const executor = new FakeExecutor({ socketPath, stateDir });
    await executor.start();
    teardowns.push(() => executor.stop());
    const log = new CapturedLog();
    const link = await subscribedLink({ socketPath, stateDir, logger: log.logger, teardowns });
    // Every command the watcher runs, counted: the machine's store is a store of its own.
    const commands: string[][] = [];
    const real = createRunner(log.logger);
    // As the module configures the daemon: the cache key trusted, the negative narinfo cache off.
    const env = { NIX_REMOTE: join(dir, 'machine-store'), NIX_CONFIG: `${NIX_CONFIG}\ntrusted-public-keys = ${cacheKey.public}\nnarinfo-cache-negative-ttl = 0` };
    const runner: Runner = (argv, opts) => {
      commands.push([...argv]);
      return real(argv, { ...opts, env: { ...opts.env, ...env } });
    };
    const watcher = new Watcher({ config, runner, logger: log.logger, executor: link });
    // The cache is down: the machine's fault, retried with back-off, nothing remembered or rooted.
    await cacheServer.stopServer();
    const down = await watcher.pollOnce();
    assert.equal(down.outcome, 'machine-error', JSON.stringify(watcher.report().lastError));
    assert.match(watcher.report().lastError?.message ?? '', /cache-unreachable/);
    assert.deepEqual(watcher.report().failedBuilds, []);
    assert.equal(existsSync(join(stateDir, 'gcroots', head)), false);
    await cacheServer.start();
    // The manifest before the cache has the toplevel (its narinfo not there yet): a wait, at the
    // regular interval (3600 s here, not the 2 s back-off), nothing remembered; then it deploys.
    const info = narinfoOf(cache, system);
    renameSync(info, `${info}.later`);
    const early = await watcher.pollOnce();
    assert.equal(early.outcome, 'source-waiting', JSON.stringify(watcher.report().lastError));
    assert.ok(early.nextDelayMs >= 3_600_000, `next poll in ${early.nextDelayMs} ms`);
    assert.deepEqual(watcher.report().failedBuilds, []);
    assert.equal(log.count('prebuilt.waiting'), 1);
    renameSync(`${info}.later`, info);
    const result = await watcher.pollOnce();
    assert.equal(result.outcome, 'deployed', JSON.stringify(watcher.report().lastError));
    assert.deepEqual(executor.deploys.map((d) => [d.commit, d.toplevel]), [[head, system]]);
    const evaluations = commands.filter((a) => ['nix-build', 'nix-instantiate'].includes(a[0]!) || (a[0] === 'nix' && a.some((x) => ['build', 'eval'].includes(x))));
    assert.deepEqual(evaluations, [], 'no evaluation, no build on the machine');
    assert.equal(log.count('build.started'), 0);
    const provenance = watcher.report().prebuilt;
    assert.deepEqual(provenance, { toplevel: system, sourceCommit: src, manifestCommit: head, signer: 'ci@example.org', cacheKey: 'ci.example.org-1' });
    assert.deepEqual(executor.lastReport?.prebuilt ?? watcher.report().prebuilt, provenance, 'the report the executor shows in status carries it');
    assert.match(cacheServer.accessLog(), /GET \/cache\/nar\/[^ ]+ HTTP\/1.1" 200/, 'the NARs came over HTTP from nginx');
    assert.match(forge.accessLog(), /git-upload-pack/, 'git fetched over smart HTTP');
  });
});
