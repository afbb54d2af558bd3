/**
 * Benchmark 6: the vulnerability gate's cost, and its cache. Two real systems built with nix
 * (plain derivations referencing 100 small "package" derivations each, differing in one), and
 * the gate (VulnerabilityGate, the watcher's own code, real runner) with the stand-in vulnix
 * (test/fixtures/vulnix: the real `nix-store -qR` over the closure, an advisory file standing in
 * for the NVD).
 *
 * A = one decision with the live system's scan cached (the live system unchanged since the last
 *     decision): one vulnix run, the new system's;
 * B = one decision with the cache emptied first: two vulnix runs, the new system's and the live one's.
 * A and B interleaved, medians compared. The stand-in is much cheaper than the real vulnix, which
 * also opens and updates its NVD database on every run (seconds): the saving is larger in production.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, createRunner, parseConfig } from '@pullnix/shared';
import { emptyMemory, VulnerabilityGate } from '@pullnix/watcher';
import { nullStream, withScratch } from './common.ts';
import { median, type Row } from './table.ts';

const STAND_IN_VULNIX = fileURLToPath(new URL('../../../test/fixtures/vulnix', import.meta.url));
const NIX_CONFIG = 'build-users-group =\nsubstituters =\nexperimental-features = nix-command flakes\nsandbox = false';
const PACKAGES = 100;
const ROUNDS = 15;

function nixSystem(): string {
  const arch = process.arch === 'arm64' ? 'aarch64' : process.arch === 'x64' ? 'x86_64' : process.arch;
  return `${arch}-linux`;
}

/** A toplevel referencing `packages` (name-version), built with the real nix. */
function buildSystem(label: string, packages: string[]): string {
  const expr = `let mk = name: derivation { inherit name; system = "${nixSystem()}"; builder = "/bin/sh"; args = [ "-c" "echo \${name} > $out" ]; };
in derivation { name = "nixos-system-bench-${label}"; system = "${nixSystem()}"; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
  packages = map mk [ ${packages.map((p) => JSON.stringify(p)).join(' ')} ];
  args = [ "-c" "mkdir -p $out/sw; for p in $packages; do ln -s $p $out/sw/; done" ]; }`;
  const r = spawnSync('nix-build', ['--no-out-link', '-E', expr], { encoding: 'utf8', env: { ...process.env, NIX_CONFIG } });
  if (r.status !== 0) throw new Error(`nix-build of the bench system failed: ${r.stderr}`);
  return r.stdout.trim();
}

export async function benchVulnix(): Promise<Row[]> {
  if (spawnSync('nix-build', ['--version']).status !== 0 || process.getuid?.() !== 0) throw new Error('the vulnix benchmark needs nix-build and root (single-user nix)');
  return withScratch('vulnix', async (scratch) => {
    process.env.NIX_CONFIG = NIX_CONFIG;
    const names = Array.from({ length: PACKAGES }, (_, i) => `pkg${String.fromCharCode(97 + (i % 26))}${Math.floor(i / 26)}-1.${i}`);
    const live = buildSystem('live', names);
    const next = buildSystem('next', [...names.slice(1), 'openssl-3.0.1']);
    const currentSystem = scratch.path('current-system');
    symlinkSync(live, currentSystem);
    const cacheDir = scratch.path('vulnix');
    mkdirSync(cacheDir);
    writeFileSync(scratch.path('vulnix/advisories.tsv'), `pkga0\t*\tCVE-2024-0001\t5.0\tin the live system only\nopenssl\t*\tCVE-2024-0002\t6.5\tbelow minSeverity\n`);
    const config = parseConfig(JSON.stringify({ repository: { url: '/r' }, build: { mode: 'flake' }, gates: { vulnerabilities: { enable: true, command: STAND_IN_VULNIX } } }));
    const memory = emptyMemory();
    const gate = new VulnerabilityGate({
      settings: config.gates.vulnerabilities,
      runner: createRunner(),
      logger: createLogger({ level: 'info', stream: nullStream() }),
      cacheDir,
      currentSystem,
      memory,
      save: () => undefined,
      now: Date.now,
    });
    const commit = '1'.repeat(40);
    const calls = () => (existsSync(join(cacheDir, 'calls')) ? readFileSync(join(cacheDir, 'calls'), 'utf8').split('\n').filter(Boolean).length : 0);
    const decide = async (cached: boolean): Promise<{ ms: number; runs: number }> => {
      if (!cached) delete memory.vulnerabilities;
      const before = calls();
      const t = performance.now();
      const v = await gate.check(commit, next);
      const ms = performance.now() - t;
      if (v.verdict !== 'deploy' || v.scan?.decision !== 'passed') throw new Error(`unexpected decision: ${JSON.stringify(v)}`);
      return { ms, runs: calls() - before };
    };
    await decide(false); // warm-up, and fills the cache
    const a: number[] = [];
    const b: number[] = [];
    let runsA = 0;
    let runsB = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const x = await decide(true);
      a.push(x.ms);
      runsA += x.runs;
      const y = await decide(false);
      b.push(y.ms);
      runsB += y.runs;
    }
    const closure = spawnSync('nix-store', ['-qR', live], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).length;
    const ma = median(a);
    const mb = median(b);
    return [
      {
        group: 'vulnerability gate',
        name: `decision, live system unchanged (cache hit) vs scanned (${closure}-path closures, stand-in vulnix)`,
        figure: ma,
        baseline: mb,
        unit: 'ms',
        goal: { text: 'cache hit ≤ 0.7× a real live scan', met: ma <= 0.7 * mb },
        note: `${ROUNDS} interleaved pairs, medians`,
      },
      {
        group: 'vulnerability gate',
        name: 'vulnix runs per decision with the live system unchanged',
        figure: runsA / ROUNDS,
        baseline: runsB / ROUNDS,
        unit: 'runs',
        goal: { text: '1 (only the new system is scanned)', met: runsA === ROUNDS },
      },
    ];
  });
}
