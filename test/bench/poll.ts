/**
 * Benchmark 1: the no-op poll. The watcher's whole poll cycle when nothing changed
 * (Watcher.pollOnce with its real GitCheckout, so simple-git and the real git binary against the
 * remote; an in-process executor stand-in that says the head is deployed, so the cycle is only
 * the watcher's own work) against a bare `git ls-remote <url> refs/heads/main` of the same
 * remote run as a child process with the same environment (shared gitEnvironment: the same
 * GIT_SSH_COMMAND, deploy key and pinned known_hosts): the physical limit of one question to the
 * remote. A and B are interleaved (A/B/A/B...) and the medians compared, so load from other
 * users of the machine falls on both alike.
 *
 * Remotes: a tiny local bare repository over file://, the same over SSH to our own sshd on
 * 127.0.0.1, and a bare repository with 10,000 commits and 5,000 files over file:// (the cost
 * must not grow with history).
 */
import { createLogger, gitEnvironment, parseConfig, type Config, type StatusResult } from '@pullnix/shared';
import { Watcher, type ExecutorClient } from '@pullnix/watcher';
import { makeBareRepo, nullStream, startSshd, timeCommand, withScratch, type Scratch } from './common.ts';
import { median, type Row } from './table.ts';

/** The executor as the no-op poll sees it: connected, and the head is what is deployed. */
function deployedStandIn(head: string): ExecutorClient {
  const now = new Date().toISOString();
  const status: StatusResult = {
    version: 'bench',
    executor: { pid: process.pid, startedAt: now, busy: false },
    paused: null,
    deployed: { deploymentId: 1, commit: head, toplevel: '/nix/store/00000000000000000000000000000000-nixos-system-bench', generation: 1, at: now },
    liveSystem: null,
    current: null,
    lastFailure: null,
    knownBad: [],
    watcher: { connected: true, report: null, reportedAt: null },
    drift: null,
  };
  return {
    connected: true,
    start: async () => undefined,
    status: async () => status,
    deploy: async () => {
      throw new Error('the no-op poll benchmark never deploys');
    },
    report: async () => undefined,
    onPush: () => () => undefined,
    onConnected: () => () => undefined,
  };
}

interface PollComparison {
  poll: number;
  lsRemote: number;
  pairs: number;
}

async function comparePoll(scratch: Scratch, name: string, url: string, head: string, pairs: number, repository: Record<string, unknown> = {}): Promise<PollComparison> {
  const stateDir = scratch.path(`state-${name}`);
  const config: Config = parseConfig(
    JSON.stringify({
      repository: { url, branch: 'main', ...repository },
      build: { mode: 'flake', host: 'bench' },
      poll: { intervalSec: 300, jitterSec: 0 },
      stateDir,
      socketPath: scratch.path('unused.sock'),
      logLevel: 'info', // as in production
    }),
    'bench config',
  );
  const logger = createLogger({ level: 'info', stream: nullStream() });
  const watcher = new Watcher({ config, logger, executor: deployedStandIn(head), runner: () => Promise.reject(new Error('no command expected')) });
  const signal = new AbortController().signal; // one signal for every poll, as the watcher's loop does
  // The first poll asks the stand-in executor, finds the head deployed and remembers it; every
  // later poll is the no-op: one ls-remote, nothing else.
  const first = await watcher.pollOnce(signal);
  if (first.outcome !== 'unchanged' || first.head !== head) throw new Error(`first poll of ${name}: ${first.outcome} ${first.head ?? '-'} (expected unchanged ${head})`);

  const env = { ...process.env, ...gitEnvironment(config) };
  const bare = () => timeCommand('git', ['ls-remote', '--', url, 'refs/heads/main'], { env, cwd: stateDir });
  const poll = async () => {
    const t = performance.now();
    const r = await watcher.pollOnce(signal);
    const ms = performance.now() - t;
    if (r.outcome !== 'unchanged') throw new Error(`poll of ${name} ended ${r.outcome}, not unchanged`);
    return ms;
  };
  for (let i = 0; i < 5; i++) {
    await poll();
    await bare();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < pairs; i++) {
    // Alternate which goes first, so neither always runs right after the other.
    if (i % 2 === 0) {
      a.push(await poll());
      b.push(await bare());
    } else {
      b.push(await bare());
      a.push(await poll());
    }
  }
  return { poll: median(a), lsRemote: median(b), pairs };
}

export async function benchPoll(options: { pairs?: number } = {}): Promise<Row[]> {
  const pairs = options.pairs ?? 40;
  return withScratch('poll', async (scratch) => {
    const smallDir = scratch.path('small.git');
    const smallHead = makeBareRepo(smallDir, 3, 3);
    const t = performance.now();
    const largeDir = scratch.path('large.git');
    const largeHead = makeBareRepo(largeDir, 10_000, 5_000);
    process.stderr.write(`  fast-import of 10,000 commits × 5,000 files: ${Math.round(performance.now() - t)} ms\n`);

    const local = await comparePoll(scratch, 'local', `file://${smallDir}`, smallHead, pairs);
    const large = await comparePoll(scratch, 'large', `file://${largeDir}`, largeHead, pairs);

    const sshd = await startSshd(scratch.path('ssh'));
    scratch.defer(() => sshd.stop());
    const ssh = await comparePoll(scratch, 'ssh', sshd.url(smallDir), smallHead, Math.max(10, Math.round(pairs / 3)), { sshKeyFile: sshd.keyFile, knownHostsFile: sshd.knownHosts });
    const sshLarge = await comparePoll(scratch, 'ssh-large', sshd.url(largeDir), largeHead, Math.max(10, Math.round(pairs / 3)), { sshKeyFile: sshd.keyFile, knownHostsFile: sshd.knownHosts });

    const goal = (c: PollComparison) => ({ text: '<= 1.3x ls-remote', met: c.poll <= 1.3 * c.lsRemote });
    const row = (name: string, c: PollComparison): Row => ({ group: 'poll', name: `${name} (vs git ls-remote, median of ${c.pairs} A/B pairs)`, figure: c.poll, baseline: c.lsRemote, unit: 'ms', goal: goal(c) });
    return [
      row('no-op poll, local file://', local),
      row('no-op poll, file://, 10,000 commits × 5,000 files', large),
      row('no-op poll, ssh://127.0.0.1', ssh),
      row('no-op poll, ssh://, 10,000 commits × 5,000 files', sshLarge),
      {
        group: 'poll',
        name: 'history growth: 10,000-commit poll (vs 3-commit poll), file://',
        figure: large.poll,
        baseline: local.poll,
        unit: 'ms',
        goal: { text: 'flat (<= 1.3x)', met: large.poll <= 1.3 * local.poll },
      },
    ];
  });
}
