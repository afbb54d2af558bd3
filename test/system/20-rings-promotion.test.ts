/**
 * Rings and promotion with real parts, no machine booted (issue 25, part 2; docs/rings.md):
 * a real git server over SSH (the host's sshd, test/lib/git-ssh-server.ts; the server's reflog
 * on), a real Prometheus (Debian's) scraping 20 simulated hosts through file_sd
 * (test/lib/fleet-sim.ts: the executor's own history and metrics code, one textfile directory
 * per host), and pullnix-promote's own code, in-process each round and as its real binary at
 * the end. Three rings: canary (3 hosts), early (5), prod (12).
 *
 * 20 seeded randomized rollouts (PULLNIX_RINGS_SEED, default 42). Time is the simulation's:
 * one round = one poll interval of the hosts (60 s) = one run of pullnix-promote (its CI
 * schedule), so every bound is asserted in rounds, never in wall time. Each rollout pushes a
 * signed commit to rings/canary carrying a rings.json with a random soak, that is good, fails
 * on some canaries, or fails on some early hosts. Asserted:
 *   - a commit that fails on the canaries reaches 0 hosts of early and prod (and the ring
 *     branches never point at it); one that fails in early reaches 0 hosts of prod;
 *   - a good commit reaches every host of ring R+1 within soak(R) + 2 rounds after the last
 *     host of ring R succeeded on it (the canaries for early, early for prod);
 *   - every update of every ring branch the server recorded (its reflog) is a fast-forward;
 *   - a rings.json whose commit is signed by an untrusted key is refused and moves nothing.
 * Needs root (sshd). Not reached: a real bed machine as one of the canaries.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger, type DeploymentOutcome } from '@pullnix/shared';
import { runPromote, type RoundResult } from '@pullnix/watcher';
import { git } from '../lib/git-remote.ts';
import { GitSshServer } from '../lib/git-ssh-server.ts';
import { FleetServer, SimHost } from '../lib/fleet-sim.ts';
import { PrometheusServer } from '../lib/prometheus.ts';
import { SshSigner } from '../lib/signing.ts';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PROMOTE_BIN = join(ROOT, 'watcher/dist/src/promote/main.js');
const SEED = Number(process.env.PULLNIX_RINGS_SEED ?? 42);
// 20 rollouts; fewer only to debug the test itself.
const ROLLOUTS = Number(process.env.PULLNIX_RINGS_ROLLOUTS ?? 20);
const POLL_SEC = 60;
const RINGS = [
  { name: 'canary', hosts: ['c1', 'c2', 'c3'] },
  { name: 'early', hosts: ['e1', 'e2', 'e3', 'e4', 'e5'] },
  { name: 'prod', hosts: Array.from({ length: 12 }, (_, i) => `p${i + 1}`) },
];
const HOSTS = RINGS.flatMap((r) => r.hosts);
const SKIP = process.getuid?.() !== 0 ? 'needs root (sshd logs in as root)' : undefined;

/** mulberry32: a small seeded generator, so a failing seed replays exactly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = 'good' | 'bad-canary' | 'bad-early';

describe('rings: promotion over a real git server and Prometheus', { skip: SKIP }, () => {
  it(`20 seeded rollouts over 3 rings (seed ${SEED})`, { timeout: 1_500_000 }, async (t) => {
    const random = rng(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const root = mkdtempSync(join(tmpdir(), 'pullnix-rings-'));
    const server = await GitSshServer.start(join(root, 'git'));
    const prometheus = await PrometheusServer.start(join(root, 'prometheus'));
    const fleet = new FleetServer();
    const alice = new SshSigner('alice', root);
    const mallory = new SshSigner('mallory', root);
    try {
      await fleet.listen();
      const hosts = RINGS.flatMap((r) => r.hosts.map((h) => new SimHost(join(root, 'hosts'), h, r.name)));
      for (const h of hosts) fleet.add(h);
      prometheus.setTargets(fleet.targets());

      // The author's clone: commits signed by alice, pushed over the push key like any developer's.
      const work = join(root, 'work');
      git(root, ['init', '--quiet', '--initial-branch=rings/canary', work]);
      const authorEnv = { GIT_SSH_COMMAND: server.sshCommand(server.pushKey) };
      const ringsJson = (soakSec: number) => JSON.stringify({ rings: RINGS.map((r) => ({ name: r.name, hosts: r.hosts, soakSec, maxFailures: 0 })) }, null, 2);
      let n = 0;
      const commit = (soakSec: number, signer = alice): string => {
        n += 1;
        writeFileSync(join(work, 'rings.json'), ringsJson(soakSec));
        writeFileSync(join(work, 'configuration.nix'), `# change ${n}\n`);
        git(work, ['add', '--all']);
        git(work, [...signer.gitArgs, 'commit', '--quiet', '-S', '-m', `change ${n}`], signer.env);
        return git(work, ['rev-parse', 'HEAD']);
      };
      const push = (refspecs: string[]) => git(work, ['push', '--quiet', server.url, ...refspecs], authorEnv);

      const c0 = commit(60);
      push(RINGS.map((r) => `${c0}:refs/heads/rings/${r.name}`));

      const promoteConfig = join(root, 'promote.json');
      writeFileSync(
        promoteConfig,
        JSON.stringify({
          repository: { url: server.url, firstRingBranch: 'rings/canary', sshKeyFile: server.pushKey, knownHostsFile: server.knownHosts },
          prometheus: { url: prometheus.url, hostLabel: 'host' },
          trust: { allowedSigners: [alice.allowed()] },
          workDir: join(root, 'promote'),
        }),
      );

      // --- one round: the hosts poll (the branches read once for all of them) and deploy, Prometheus scrapes every host's new state, pullnix-promote runs.
      let now = Date.parse('2026-12-01T00:00:00Z');
      let round = 0;
      let disturbed = 0;
      const failsOn = new Map<string, Set<string>>();
      const logLines: string[] = [];
      const logger = createLogger({
        level: 'info',
        stream: new Writable({
          write(chunk: Buffer, _encoding, done) {
            logLines.push(chunk.toString());
            done();
          },
        }),
      });
      const promoteRound = async (): Promise<{ code: number; result: RoundResult | null; err: string }> => {
        let out = '';
        let err = '';
        const code = await runPromote(['run', '--config', promoteConfig, '--json'], { out: (s) => (out += s), err: (s) => (err += s), logger, now: () => now });
        return { code, result: code === 0 || code === 3 ? (JSON.parse(out) as RoundResult) : null, err };
      };
      const tick = async (): Promise<RoundResult> => {
        round += 1;
        now += POLL_SEC * 1000;
        const heads = await server.heads();
        for (const h of hosts) {
          const c = heads.get(`rings/${h.ring}`);
          if (c === undefined || c === h.lastAttempt) continue;
          const outcome: DeploymentOutcome = failsOn.get(c)?.has(h.name) ? 'rolled-back' : 'succeeded';
          h.deploy(c, outcome, now);
        }
        fleet.round = round;
        // A scrape that fails (a loaded machine) makes its host's series stale for a moment, and
        // pullnix-promote rightly counts a host it cannot see as pending. Such a promote run says
        // nothing about the rules, so it is run again (same round, same simulated time) until
        // every host was scraped without a failure from before it started to after it ended.
        for (;;) {
          await prometheus.waitFor(async () => Number((await prometheus.query(`count(pullnix_sim_round == ${round})`))[0]?.value[1] ?? 0) === HOSTS.length, `Prometheus to scrape round ${round}`);
          const started = Date.now();
          const r = await promoteRound();
          assert.ok(r.result, `round ${round}: pullnix-promote exited ${r.code}: ${r.err}`);
          const window = Math.ceil((Date.now() - started) / 1000) + 2;
          const unbroken = Number((await prometheus.query(`count(min_over_time(up{job="pullnix"}[${window}s]) == 1)`))[0]?.value[1] ?? 0);
          if (unbroken === HOSTS.length) return r.result;
          disturbed += 1;
          // Nothing may have been pushed on a partial view: it can only hold back, never promote,
          // but a promotion it did make stands (git has it), so the round is over.
          if (r.result.steps.some((step) => step.action === 'promoted')) return r.result;
        }
      };

      // Every host deploys c0 first.
      await tick();
      assert.ok(hosts.every((h) => h.deployed === c0));

      const summary: string[] = [];
      for (let k = 1; k <= ROLLOUTS; k++) {
        const kind: Kind = pick(['good', 'good', 'good', 'bad-canary', 'bad-early']);
        const soakSec = pick([60, 120, 180]);
        const soakRounds = soakSec / POLL_SEC;
        const c = commit(soakSec);
        const ring = kind === 'bad-canary' ? RINGS[0]! : RINGS[1]!;
        if (kind !== 'good') failsOn.set(c, new Set(ring.hosts.filter(() => random() < 0.5).concat(pick(ring.hosts))));
        push([`${c}:refs/heads/rings/canary`]);

        const doneAt: (number | null)[] = RINGS.map(() => null);
        const haltedAt: (number | null)[] = RINGS.map(() => null);
        // Long enough for a good commit's worst case; a failing one gets its ring's soak + 2 rounds
        // after the halt to leak, which it must not.
        const limit = 2 * (soakRounds + 2) + 4;
        let leakRounds = soakRounds + 2;
        for (let i = 0; i < limit; i++) {
          const result = await tick();
          RINGS.forEach((r, ri) => {
            if (doneAt[ri] === null && r.hosts.every((name) => hosts.find((h) => h.name === name)!.deployed === c)) doneAt[ri] = round;
            if (haltedAt[ri] === null && result.rings[ri]!.commit === c && result.rings[ri]!.state === 'halted') haltedAt[ri] = round;
          });
          if (kind === 'good' && doneAt[2] !== null) break;
          if (kind !== 'good' && haltedAt[kind === 'bad-canary' ? 0 : 1] !== null && leakRounds-- === 0) break;
        }
        const reached = (ringIndex: number) => RINGS[ringIndex]!.hosts.filter((name) => hosts.find((h) => h.name === name)!.attempted.includes(c)).length;
        summary.push(`${k} ${kind} soak=${soakSec}s done=${doneAt.join('/')} halted=${haltedAt.join('/')} reached=${RINGS.map((_, i) => reached(i)).join('/')}`);
        if (kind === 'good') {
          assert.ok(doneAt[0] !== null && doneAt[1] !== null && doneAt[2] !== null, `rollout ${k}: good commit ${c} did not reach every host: ${summary.at(-1)}`);
          for (const ri of [1, 2]) {
            assert.ok(doneAt[ri]! - doneAt[ri - 1]! <= soakRounds + 2, `rollout ${k}: ring ${RINGS[ri]!.name} got ${c} ${doneAt[ri]! - doneAt[ri - 1]!} rounds after ${RINGS[ri - 1]!.name} succeeded (soak ${soakRounds} + 2 allowed)`);
          }
        } else if (kind === 'bad-canary') {
          assert.ok(haltedAt[0] !== null, `rollout ${k}: the canaries' failure on ${c} was not seen: ${summary.at(-1)}`);
          assert.equal(reached(1) + reached(2), 0, `rollout ${k}: a commit failing on the canaries reached later rings`);
        } else {
          assert.ok(haltedAt[1] !== null, `rollout ${k}: the early ring's failure on ${c} was not seen: ${summary.at(-1)}`);
          assert.equal(reached(2), 0, `rollout ${k}: a commit failing in early reached prod`);
        }
        for (const r of RINGS.slice(kind === 'bad-canary' ? 1 : 2)) {
          if (kind !== 'good') assert.ok(!server.reflog(`rings/${r.name}`).some((e) => e.new === c), `rollout ${k}: rings/${r.name} pointed at the failing commit ${c}`);
        }
      }
      t.diagnostic(`rollouts (k kind soak done-round per ring, halted-round per ring, hosts reached per ring):\n${summary.join('\n')}`);
      t.diagnostic(`rounds: ${round}; promote runs repeated because a scrape failed during them: ${disturbed}`);

      // --- an untrusted rings.json: refused, nothing moves.
      const before = await server.heads();
      const forged = commit(0, mallory);
      push([`${forged}:refs/heads/rings/canary`]);
      const refused = await promoteRound();
      assert.equal(refused.code, 2, refused.err);
      assert.match(refused.err, /refused: rings\.json at the head of rings\/canary is not trusted: commit [0-9a-f]{40} \("change \d+"\): signed by a key that is not trusted/);
      const after = await server.heads();
      for (const r of RINGS.slice(1)) assert.equal(after.get(`rings/${r.name}`), before.get(`rings/${r.name}`));
      assert.ok(logLines.some((l) => l.startsWith('<4>promote.refused reason=untrusted')));

      // --- the server's reflog: every ring branch only ever moved by fast-forward.
      let updates = 0;
      for (const r of RINGS) {
        const log = server.reflog(`rings/${r.name}`);
        assert.ok(log.length > 0);
        for (const e of log) {
          if (/^0+$/.test(e.old)) continue; // the branch's creation by the author, at setup
          updates += 1;
          assert.ok(server.isAncestor(e.old, e.new), `rings/${r.name}: ${e.old} → ${e.new} is not a fast-forward (${e.message})`);
        }
      }
      t.diagnostic(`ring branch updates in the server's reflog, all fast-forwards: ${updates}`);

      // --- the real binary: status, per ring (exit 2: the forged head is still there).
      // (Asynchronously: the simulated hosts are served by this process while it waits.)
      const untrusted = await execFileAsync(process.execPath, [PROMOTE_BIN, 'status', '--config', promoteConfig], { encoding: 'utf8' }).then(
        () => assert.fail('status read an untrusted rings.json'),
        (error: { code: number; stderr: string }) => error,
      );
      assert.equal(untrusted.code, 2, untrusted.stderr);
      // Back to a trusted head (a fast-forward on top of the forged commit, signed by alice).
      const mended = commit(60);
      push([`${mended}:refs/heads/rings/canary`]);
      const { stdout: status } = await execFileAsync(process.execPath, [PROMOTE_BIN, 'status', '--config', promoteConfig], { encoding: 'utf8' });
      t.diagnostic(status);
      assert.match(status, new RegExp(`^rings\\.json at ${mended} \\(rings/canary, signature good\\)$`, 'm'));
      assert.match(status, /^canary +[0-9a-f]{12} +0\/3 +0 +3 +- +waiting$/m);
      // prod runs the last commit that got through: every host of it has it.
      assert.match(status, /^prod +[0-9a-f]{12} +12\/12 +0 +0 /m);
    } finally {
      server.stop();
      prometheus.stop();
      await fleet.close();
      alice.cleanup();
      mallory.cleanup();
      rmSync(root, { recursive: true, force: true });
    }
  });
});
