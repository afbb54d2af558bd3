/**
 * Benchmark 4: the deployment's overhead. A real pullnix-executor process deploys real toplevels
 * (directories added to /nix/store with `nix-store --add`, each holding a stand-in
 * `bin/switch-to-configuration` and `nixos-version`) with stand-ins that return at once first on
 * its PATH: `systemd-run` (runs its command in the foreground, like --wait --pipe), `systemctl`,
 * `nix-env` (makes the next `system-N-link` generation and repoints the profile, as --set does),
 * and a wrapper around the real `git`, whose `ls-remote` of a local bare repository is the
 * connectivity check. Every stand-in stamps its own start and end ($EPOCHREALTIME, no fork).
 *
 * total     = the watcher's `deploy` request sent → the response with the recorded outcome
 *             received (an upper bound of "deploy received → outcome recorded": it adds signing
 *             and one socket round trip, under a millisecond);
 * commands  = the sum of the stamped own run times of the commands run inside that window
 *             (systemctl cat, systemctl list-units and show (the failed-units check's looks),
 *             systemd-run + switch-to-configuration test, git ls-remote, nix-env --set,
 *             switch-to-configuration boot);
 * overhead  = total − commands: pullnix's own work (Node, validation, fsync'd history and state
 *             writes, spawning the commands).
 * Baseline: the same commands run bare (the five, and the four systemctl looks of a deployment that moves no unit), one after the other, from this process (spawn to
 * exit), interleaved with the deployments (A/B/A/B) and compared by medians.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gitEnvironment, loadSigningKey, parseConfig, SocketClient } from '@pullnix/shared';
import { makeBareRepo, randomCommit, sleep, timeCommand, withScratch, writeExecutable } from './common.ts';
import { daemonNodeFlags, startNode, stop } from './proc.ts';
import { median, percentile, type Row } from './table.ts';

const EXECUTOR_MAIN = fileURLToPath(new URL('../../../executor/dist/src/main.js', import.meta.url));
const NIX_CONFIG = 'build-users-group =\nsubstituters =\nsandbox = false';

const STAMP = `printf '%s\\t%s\\t%s\\n' "$name" "$s" "$EPOCHREALTIME" >> "$PULLNIX_BENCH_DIR/stamps.log"`;

const SYSTEMD_RUN = `#!/bin/bash
s=$EPOCHREALTIME name=systemd-run
while [ $# -gt 0 ]; do
  case "$1" in
    -E|-p|--setenv|--property) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
"$@"; code=$?
${STAMP}
exit $code
`;

/**
 * \`systemctl show --property=... -- <units>\` (no --value): with unit.invocation in the bench
 * directory (the restarting variant), one loaded service, bench-web.service, as systemctl prints it:
 * Name=value lines (systemd src/shared/bus-print-properties.c, bus_print_property_value), USec
 * properties as format_timespan writes them (bus_print_property: strstr(name, "USec") →
 * FORMAT_TIMESPAN), systemd's defaults for RestartSec= (100ms, systemd.service(5)) and the start
 * limit (10s / 5, systemd-system.conf(5) DefaultStartLimitIntervalSec=, DefaultStartLimitBurst=).
 * Its InvocationID and ActiveEnterTimestampMonotonic are what the last activation wrote. Without
 * the file, no unit (every other answer is empty, as before).
 */
const SYSTEMCTL = `#!/bin/bash
s=$EPOCHREALTIME name=systemctl-$1
if [ "$1" = cat ]; then printf '# /etc/systemd/system/%s\\n[Service]\\nExecStart=/nix/store/bench/bin/pullnix-executor\\nRestart=always\\n' "$3"; fi
if [ "$1" = show ] && [ -f "$PULLNIX_BENCH_DIR/unit.invocation" ] && [[ " $* " != *" --value "* ]]; then
  read -r inv < "$PULLNIX_BENCH_DIR/unit.invocation"
  printf 'Restart=on-failure\\nRestartUSec=100ms\\nNRestarts=0\\nId=bench-web.service\\nActiveEnterTimestampMonotonic=%s\\nStartLimitIntervalUSec=10s\\nStartLimitBurst=5\\nInvocationID=%032d\\n' "$inv" "$inv"
fi
${STAMP}
exit 0
`;

/** bench-web.service's window: RestartUSec + StartLimitIntervalUSec / StartLimitBurst (executor/src/verify/units.ts, settleWindowMs). */
const UNIT_WINDOW_MS = 100 + 10_000 / 5;

/** nix-env -p <profile> --set <path>: the next generation link, then the profile repointed. */
const NIX_ENV = `#!/bin/bash
s=$EPOCHREALTIME name=nix-env
profile=$2 target=$4
n=0; if [ -f "$profile.gen" ]; then read -r n < "$profile.gen"; fi
n=$((n + 1)); echo "$n" > "$profile.gen"
ln -sfn "$target" "$profile-$n-link" && ln -sfn "$profile-$n-link" "$profile.tmp" && mv -Tf "$profile.tmp" "$profile"; code=$?
${STAMP}
exit $code
`;

const GIT = (realGit: string) => `#!/bin/bash
s=$EPOCHREALTIME name=git-$1
${realGit} "$@"; code=$?
${STAMP}
exit $code
`;

/** Inside each toplevel: `test`/`switch` repoint current-system (as activation does); every action returns at once. */
const SWITCH_TO_CONFIGURATION = `#!/bin/bash
s=$EPOCHREALTIME name=stc-$1
top=\${0%/bin/switch-to-configuration}
if [ "$1" = test ] || [ "$1" = switch ]; then
  ln -sfn "$top" "$PULLNIX_BENCH_DIR/current-system.new" && mv -Tf "$PULLNIX_BENCH_DIR/current-system.new" "$PULLNIX_BENCH_DIR/current-system"
  # the restarting variant: bench-web.service starts again (a new invocation)
  if [ -f "$PULLNIX_BENCH_DIR/unit.invocation" ]; then echo "\${EPOCHREALTIME/./}" > "$PULLNIX_BENCH_DIR/unit.invocation"; fi
fi
${STAMP}
exit 0
`;

interface Stamp {
  name: string;
  start: number;
  end: number;
}

function readStamps(dir: string): Stamp[] {
  let text = '';
  try {
    text = readFileSync(join(dir, 'stamps.log'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [name, start, end] = l.split('\t');
      return { name: name!, start: Number(start) * 1000, end: Number(end) * 1000 };
    })
    .sort((a, b) => a.start - b.start);
}

/**
 * The commands of one deployment up to its recorded outcome, by name: the first `systemctl cat`
 * (the unit read before activation; the restart and the second cat come after the answer),
 * the failed-units looks (`systemctl list-units`, `systemctl show`) that ended before the answer
 * (`until`, epoch ms), systemd-run (switch-to-configuration test runs inside it), every git
 * attempt, nix-env and switch-to-configuration boot.
 */
function commandTime(stamps: readonly Stamp[], until = Infinity): { ms: number; names: string[] } {
  const inWindow: Stamp[] = [];
  let catSeen = false;
  for (const s of stamps) {
    if ((s.name === 'systemctl-list-units' || s.name === 'systemctl-show') && s.end <= until) {
      inWindow.push(s);
    } else if (s.name === 'systemctl-cat' && !catSeen) {
      catSeen = true;
      inWindow.push(s);
    } else if (s.name === 'systemd-run' || s.name.startsWith('git-') || s.name === 'nix-env' || s.name === 'stc-boot') {
      inWindow.push(s);
    }
  }
  return { ms: inWindow.reduce((sum, s) => sum + (s.end - s.start), 0), names: inWindow.map((s) => s.name) };
}

function addSystem(srcRoot: string, name: string): string {
  const dir = join(srcRoot, name);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeExecutable(join(dir, 'bin', 'switch-to-configuration'), SWITCH_TO_CONFIGURATION);
  writeFileSync(join(dir, 'nixos-version'), '25.05.bench\n');
  // Same content, same store path on every run: the store does not fill up with bench systems.
  return execFileSync('nix-store', ['--add', dir], { env: { ...process.env, NIX_CONFIG }, encoding: 'utf8' }).trim();
}

/**
 * `restartUnit`: every activation restarts one service with restart logic (bench-web.service,
 * systemd's defaults), which the failed-units check must watch for its window (2.1 s), not for
 * verify.failedUnits.settleSec (5 s). Otherwise the activation moves no unit, and nothing is waited for.
 */
const LIST_UNITS = ['list-units', '--all', '--plain', '--no-legend', '--no-pager', '--state=failed,auto-restart'];
const SHOW_UNITS = ['show', '--property=Id,InvocationID,NRestarts', '--', '*'];

export async function benchDeploy(options: { deployments?: number; warmup?: number; restartUnit?: boolean } = {}): Promise<Row[]> {
  const restartUnit = options.restartUnit ?? false;
  const deployments = options.deployments ?? (restartUnit ? 10 : 20);
  const warmup = options.warmup ?? (restartUnit ? 2 : 3);
  return withScratch(restartUnit ? 'deploy-restart' : 'deploy', async (scratch) => {
    const bin = scratch.path('bin');
    mkdirSync(bin);
    const realGit = execFileSync('bash', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
    writeExecutable(join(bin, 'systemd-run'), SYSTEMD_RUN);
    writeExecutable(join(bin, 'systemctl'), SYSTEMCTL);
    writeExecutable(join(bin, 'nix-env'), NIX_ENV);
    writeExecutable(join(bin, 'git'), GIT(realGit));

    const systems = ['pullnix-bench-system-0', 'pullnix-bench-system-a', 'pullnix-bench-system-b'].map((n) => addSystem(scratch.path('src'), n));
    const remote = scratch.path('remote.git');
    makeBareRepo(remote, 5, 5);

    // The executor's world, and a separate one for the bare baseline runs (their own profile and links).
    const worlds = ['executor', 'baseline'].map((name) => {
      const dir = scratch.path(name);
      mkdirSync(join(dir, 'profiles'), { recursive: true });
      symlinkSync(systems[0]!, join(dir, 'current-system'));
      return dir;
    }) as [string, string];
    const [world, baselineWorld] = worlds;
    if (restartUnit) writeFileSync(join(world, 'unit.invocation'), '1\n');
    const configPath = scratch.path('config.json');
    const configJson = {
      repository: { url: `file://${remote}`, branch: 'main' },
      build: { mode: 'flake', host: 'bench' },
      verify: { timeoutSec: 30, initialBackoffMs: 100, attemptTimeoutSec: 10 },
      activationTimeoutSec: 60,
      stateDir: join(world, 'state'),
      socketPath: join(world, 'run', 'executor.sock'),
      logLevel: 'info', // as in production
      operators: { group: 'root' },
      paths: { systemProfile: join(world, 'profiles', 'system'), currentSystem: join(world, 'current-system') },
    };
    writeFileSync(configPath, JSON.stringify(configJson));
    const config = parseConfig(JSON.stringify(configJson), 'bench config');
    const env = (dir: string) => ({ ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, PULLNIX_BENCH_DIR: dir });

    const executor = await startNode(EXECUTOR_MAIN, ['--config', configPath], /executor\.started/, env(world), daemonNodeFlags('executor'));
    scratch.defer(() => stop(executor));
    const client = new SocketClient({ path: config.socketPath, key: loadSigningKey(join(config.stateDir, 'keys', 'watcher.key')) });
    await client.connect();
    scratch.defer(() => client.close());

    const deployOnce = async (i: number) => {
      writeFileSync(join(world, 'stamps.log'), '');
      const toplevel = systems[1 + (i % 2)]!;
      const t0 = performance.now();
      const { deployment } = await client.request('deploy', { commit: randomCommit(), toplevel }, { timeoutMs: 120_000 });
      const total = performance.now() - t0;
      const answered = Date.now();
      if (deployment.outcome !== 'succeeded') throw new Error(`bench deployment ${deployment.id} ended ${deployment.outcome}: ${deployment.error?.message ?? ''}`);
      // Steps 7-8 (restart the watcher, read the unit again) run after the answer; wait them out.
      for (let n = 0; (await client.request('status', {})).executor.busy; n++) {
        if (n > 2000) throw new Error('the executor stayed busy after the deployment');
        await sleep(5);
      }
      const commands = commandTime(readStamps(world), answered);
      const wait = deployment.checks?.find((c) => c.name === 'failed-units')?.durationMs ?? 0;
      return { total, commands: commands.ms, names: commands.names, wait };
    };

    const bareEnv = env(baselineWorld);
    const gitEnv = { ...bareEnv, ...gitEnvironment(config) };
    const bareOnce = async (i: number) => {
      writeFileSync(join(baselineWorld, 'stamps.log'), '');
      const toplevel = systems[1 + (i % 2)]!;
      const stc = `${toplevel}/bin/switch-to-configuration`;
      let ms = 0;
      ms += await timeCommand('systemctl', ['cat', '--', 'pullnix-executor.service'], { env: bareEnv });
      // the failed units before, the units before, then the check's first look: the failed units and the units again
      for (const args of [LIST_UNITS, SHOW_UNITS, LIST_UNITS, SHOW_UNITS]) ms += await timeCommand('systemctl', args, { env: bareEnv });
      ms += await timeCommand('systemd-run', ['--unit=pullnix-activate-bench', '--service-type=exec', '--collect', '--pipe', '--wait', '--quiet', '-E', 'LOCALE_ARCHIVE', '-E', 'NIXOS_INSTALL_BOOTLOADER', stc, 'test'], { env: bareEnv });
      ms += await timeCommand('git', ['ls-remote', '--', config.repository.url, 'refs/heads/main'], { env: gitEnv });
      ms += await timeCommand('nix-env', ['-p', join(baselineWorld, 'profiles', 'system'), '--set', toplevel], { env: bareEnv });
      ms += await timeCommand(stc, ['boot'], { env: bareEnv });
      return { wall: ms, own: commandTime(readStamps(baselineWorld)).ms };
    };

    for (let i = 0; i < warmup; i++) {
      await deployOnce(i);
      await bareOnce(i);
    }
    const totals: number[] = [];
    const commands: number[] = [];
    const overheads: number[] = [];
    const waits: number[] = [];
    const bare: number[] = [];
    let names: string[] = [];
    for (let i = 0; i < deployments; i++) {
      const run = async () => {
        const d = await deployOnce(i);
        totals.push(d.total);
        commands.push(d.commands);
        // The restarting variant: the unit's window is a legitimate wait, not overhead.
        overheads.push(d.total - d.commands - (restartUnit ? UNIT_WINDOW_MS : 0));
        waits.push(d.wait);
        names = d.names;
      };
      const base = async () => bare.push((await bareOnce(i)).wall);
      if (i % 2 === 0) {
        await run();
        await base();
      } else {
        await base();
        await run();
      }
    }
    process.stderr.write(`  commands inside one deployment: ${names.join(', ')}\n`);
    const overhead = median(overheads);
    const p90 = percentile([...overheads].sort((a, b) => a - b), 90);
    if (restartUnit) {
      const wait = median(waits);
      return [
        {
          group: 'deploy',
          name: `restarting one unit (Restart=on-failure, 100ms + 10s/5): the failed-units check's wait (vs that unit's window), median of ${deployments}`,
          figure: wait,
          baseline: UNIT_WINDOW_MS,
          unit: 'ms',
          goal: { text: 'window <= wait < settleSec (5 s)', met: wait >= UNIT_WINDOW_MS && wait < 5000 },
        },
        {
          group: 'deploy',
          name: 'restarting one unit: overhead = total - commands - the unit\'s window (vs the commands)',
          figure: overhead,
          baseline: median(commands),
          unit: 'ms',
          goal: { text: '<= 300 ms', met: overhead <= 300 },
        },
      ];
    }
    return [
      {
        group: 'deploy',
        name: `moving no unit: deploy received -> outcome recorded (vs the same commands run bare), median of ${deployments}`,
        figure: median(totals),
        baseline: median(bare),
        unit: 'ms',
        goal: null,
      },
      {
        group: 'deploy',
        name: 'moving no unit: overhead = total - time inside the commands (vs that time)',
        figure: overhead,
        baseline: median(commands),
        unit: 'ms',
        goal: { text: '<= 300 ms', met: overhead <= 300 },
      },
      { group: 'deploy', name: `moving no unit: overhead p90 of ${deployments}`, figure: p90, baseline: null, unit: 'ms', goal: { text: '<= 300 ms', met: p90 <= 300 } },
    ];
  });
}
