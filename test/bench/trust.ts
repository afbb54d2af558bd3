/**
 * Benchmark: what end-to-end trust adds to a deployment (issue 21). The executor's own check
 * (executor/src/pipeline/trust.ts verifyTrust, the real code) runs against a local bare repository
 * whose branch holds SSH-signed commits of a tiny flake (a plain derivation, no inputs, like the
 * bed's): root's fetch into its mirror, the signature range (git log + ssh-keygen per commit),
 * and the evaluation of the commit's toplevel outPath. `systemd-run` is a stand-in first on PATH
 * (there is no systemd here): it gives the command a private mount namespace with the mirror
 * bound where the unit would see it (`unshare -m`, as BindReadOnlyPaths does) and runs it under
 * GNU time for its peak RSS; it does not drop to a dynamic user nor use the nix-daemon (single-user Nix here) (the bed does that for real,
 * scenarios 8 and 15).
 *
 * Baseline: what the watcher already does for the same commit, in the same run: fetch into its
 * checkout, the same signature check (shared TrustGate), and `nix build` of the toplevel. So the
 * ratio says how much root's second look adds to the watcher's work for one deployment. Rounds
 * alternate A/B; medians.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, createRunner, parseConfig, TrustGate, type Config } from '@pullnix/shared';
import { executorTrustGate, verifyTrust, type PipelineContext } from '@pullnix/executor';
import { SshSigner } from '../lib/signing.ts';
import { git, nullStream, withScratch, writeExecutable } from './common.ts';
import { median, type Row } from './table.ts';

const ROUNDS = 5;
const HISTORY = 50;

const SYSTEMD_RUN = `#!/bin/bash
# bench stand-in for systemd-run: BindReadOnlyPaths= and -E honoured, everything else ignored.
binds=() envs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -p) case "$2" in BindReadOnlyPaths=*) binds+=("\${2#BindReadOnlyPaths=}") ;; esac; shift 2 ;;
    -E) case "$2" in *=*) [ "$2" = NIX_REMOTE=daemon ] || envs+=("$2") ;; *) envs+=("$2=\${!2}") ;; esac; shift 2 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
script='mount -t tmpfs tmpfs /run/pullnix-eval'
for b in "\${binds[@]}"; do
  src=\${b%%:*} dst=\${b#*:}
  script+="; if [ -d $src ]; then mkdir -p $dst; else touch $dst; fi; mount --bind -o ro $src $dst"
done
mkdir -p /run/pullnix-eval
exec unshare -m --propagation private bash -c "$script"'; exec env "$@"' bash "\${envs[@]/#HOME=*/HOME=$PULLNIX_BENCH_DIR/home}" /usr/bin/time -f %M -a -o "$PULLNIX_BENCH_DIR/eval-rss" "$@"
`;

export async function benchTrust(): Promise<Row[]> {
  if (process.getuid?.() !== 0) throw new Error('the trust benchmark needs root (unshare -m, single-user nix)');
  return withScratch('trust', async (scratch) => {
    process.env.NIX_CONFIG = 'build-users-group =\nsubstituters =\nsandbox = false\nexperimental-features = nix-command flakes';
    process.env.PULLNIX_BENCH_DIR = scratch.dir;
    mkdirSync(scratch.path('home'));
    const alice = new SshSigner('alice', scratch.dir);
    const system = execFileSync('nix', ['eval', '--impure', '--raw', '--expr', 'builtins.currentSystem'], { encoding: 'utf8' }).trim();

    // The remote: a work tree pushed to a bare repository, HISTORY signed commits.
    const work = scratch.path('work');
    const remote = scratch.path('remote.git');
    mkdirSync(work);
    git(scratch.dir, ['init', '--quiet', '--bare', '--initial-branch=main', remote]);
    git(work, ['init', '--quiet', '--initial-branch=main']);
    for (let i = 0; i < HISTORY; i++) {
      writeFileSync(join(work, 'flake.nix'), `{ outputs = { self }: { nixosConfigurations.bench.config.system.build.toplevel = derivation { name = "nixos-system-bench-${i}"; system = "${system}"; builder = "/bin/sh"; args = [ "-c" "echo ${i} > $out" ]; }; }; }\n`);
      git(work, ['add', '-A']);
      git(work, [...alice.gitArgs, 'commit', '-S', '-q', '-m', `change ${i}`]);
    }
    git(work, ['push', '-q', remote, 'main']);
    const head = git(work, ['rev-parse', 'HEAD']);
    const parent = git(work, ['rev-parse', 'HEAD^']);

    const bin = scratch.path('bin');
    mkdirSync(bin);
    writeExecutable(join(bin, 'systemd-run'), SYSTEMD_RUN);
    process.env.PATH = `${bin}:${process.env.PATH ?? ''}`;

    const log = createLogger({ level: 'info', stream: nullStream() });
    const runner = createRunner();
    const config = (stateDir: string): Config =>
      parseConfig(JSON.stringify({ repository: { url: remote, branch: 'main' }, build: { mode: 'flake', host: 'bench' }, trust: { mode: 'all', allowedSigners: [alice.allowed()] }, stateDir }));

    // The watcher's work for the same commit: fetch into a checkout, the signature range, nix build.
    const watcherSide = async (round: number, trusted: string | null): Promise<number> => {
      const dir = scratch.path(`watcher-${round}-${trusted ? 'one' : 'all'}`);
      const t = performance.now();
      git(scratch.dir, ['init', '--quiet', dir]);
      git(dir, ['fetch', '--quiet', '--no-tags', remote, '+refs/heads/main:refs/pullnix/main']);
      const gate = new TrustGate({ trust: config(dir).trust, runner, gitDir: join(dir, '.git'), dir: join(dir, 'trust') });
      const verdict = await gate.check(head, [trusted]);
      if (!verdict.ok) throw new Error(`the watcher's check refused: ${verdict.message}`);
      git(dir, ['-c', 'advice.detachedHead=false', 'checkout', '-q', head]);
      execFileSync('nix', ['build', '--no-link', `${dir}#nixosConfigurations.bench.config.system.build.toplevel`], { stdio: 'ignore' });
      return performance.now() - t;
    };
    const toplevel = execFileSync('nix', ['eval', '--raw', `git+file://${remote}?ref=refs/heads/main&rev=${head}#nixosConfigurations.bench.config.system.build.toplevel.outPath`], { encoding: 'utf8' }).trim();

    // Root's check, from a fresh state directory each time (first deployment: the whole history)
    // or after `parent` was deployed (one commit in the range, the mirror already holding the rest).
    const rootSide = async (round: number, trusted: string | null): Promise<{ ms: number; fetch: number; signatures: number; evaluation: number }> => {
      const stateDir = scratch.path(`root-${round}-${trusted ? 'one' : 'all'}`);
      const c = config(stateDir);
      const ctx = { config: c, runner, log, clock: { now: () => performance.now(), sleep: async () => undefined } } as unknown as PipelineContext;
      if (trusted) await verifyTrust(ctx, executorTrustGate(c, runner), { commit: parent, toplevel: toplevelOf(remote, parent) }, null);
      const t = performance.now();
      const timings = await verifyTrust(ctx, executorTrustGate(c, runner), { commit: head, toplevel }, trusted);
      if (!timings) throw new Error('trust was off');
      return { ms: performance.now() - t, fetch: timings.fetchMs, signatures: timings.signaturesMs, evaluation: timings.evaluationMs };
    };

    const rows: Row[] = [];
    for (const [label, trusted] of [[`first deployment (${HISTORY} signed commits checked)`, null], ['next deployment (1 new signed commit)', parent]] as const) {
      const a: number[] = [];
      const b: number[] = [];
      const parts = { fetch: [] as number[], signatures: [] as number[], evaluation: [] as number[] };
      for (let i = 0; i < ROUNDS; i++) {
        const r = await rootSide(i, trusted);
        a.push(r.ms);
        parts.fetch.push(r.fetch);
        parts.signatures.push(r.signatures);
        parts.evaluation.push(r.evaluation);
        b.push(await watcherSide(i, trusted));
      }
      rows.push({
        group: 'trust',
        name: `root's verification, ${label}, vs the watcher's fetch + check + build`,
        figure: median(a),
        baseline: median(b),
        unit: 'ms',
        goal: { text: "≤ 1.5× the watcher's own work", met: median(a) <= 1.5 * median(b) },
        note: `${ROUNDS} interleaved rounds, medians; of which fetch ${median(parts.fetch).toFixed(0)} ms, signatures ${median(parts.signatures).toFixed(0)} ms, evaluation ${median(parts.evaluation).toFixed(0)} ms`,
      });
    }
    const rss = readFileSync(scratch.path('eval-rss'), 'utf8').split('\n').map(Number).filter((n) => n > 0);
    const executorRss = process.memoryUsage().rss / 1024;
    rows.push({
      group: 'trust',
      name: "peak RSS of the evaluation unit (nix eval), vs this Node process's RSS",
      figure: Math.max(...rss) / 1024,
      baseline: executorRss / 1024,
      unit: 'MiB',
      goal: null,
      note: 'a transient unit of its own: it adds to the machine, never to the executor process',
    });
    alice.cleanup();
    return rows;
  });
}

function toplevelOf(remote: string, commit: string): string {
  return execFileSync('nix', ['eval', '--raw', `git+file://${remote}?ref=refs/heads/main&rev=${commit}#nixosConfigurations.bench.config.system.build.toplevel.outPath`], { encoding: 'utf8' }).trim();
}
