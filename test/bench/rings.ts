/**
 * pullnix-promote status for a fleet of 1,000 simulated hosts (test/lib/fleet-sim.ts, the
 * executor's own metrics code) scraped by a real Prometheus, against the Prometheus query alone
 * (one instant query of pullnix_deployed_info over the HTTP API). The status also fetches the
 * repository over SSH (a real sshd, test/lib/git-ssh-server.ts), checks rings.json's signature
 * and runs its three queries; the ratio says what all that costs over the query a dashboard
 * would make. Issue 25's goal: ≤ 1 s.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@pullnix/shared';
import { runPromote } from '@pullnix/watcher';
import { FleetServer, SimHost } from '../lib/fleet-sim.ts';
import { git } from '../lib/git-remote.ts';
import { GitSshServer } from '../lib/git-ssh-server.ts';
import { PrometheusServer } from '../lib/prometheus.ts';
import { SshSigner } from '../lib/signing.ts';
import { withScratch } from './common.ts';
import { median, type Row } from './table.ts';

const HOSTS = 1000;
const RUNS = 7;

export async function benchRings(): Promise<Row[]> {
  return withScratch('rings', async (scratch) => {
    const root = scratch.dir;
    const server = await GitSshServer.start(join(root, 'git'));
    const prometheus = await PrometheusServer.start(join(root, 'prometheus'), { scrapeInterval: '10s' });
    const fleet = new FleetServer();
    const alice = new SshSigner('alice', root);
    try {
      await fleet.listen();
      const rings = [
        { name: 'canary', hosts: Array.from({ length: 10 }, (_, i) => `canary-${i}`) },
        { name: 'early', hosts: Array.from({ length: 90 }, (_, i) => `early-${i}`) },
        { name: 'prod', hosts: Array.from({ length: HOSTS - 100 }, (_, i) => `prod-${i}`) },
      ];
      const work = join(root, 'work');
      git(root, ['init', '--quiet', '--initial-branch=rings/canary', work]);
      writeFileSync(join(work, 'rings.json'), JSON.stringify({ rings: rings.map((r) => ({ ...r, soakSec: 3600 })) }));
      git(work, ['add', '--all']);
      git(work, [...alice.gitArgs, 'commit', '--quiet', '-S', '-m', 'rings'], alice.env);
      const c0 = git(work, ['rev-parse', 'HEAD']);
      git(work, ['push', '--quiet', server.url, ...rings.map((r) => `${c0}:refs/heads/rings/${r.name}`)], { GIT_SSH_COMMAND: server.sshCommand(server.pushKey) });

      const now = Date.now();
      for (const r of rings) {
        for (const name of r.hosts) {
          const h = new SimHost(join(root, 'hosts'), name, r.name);
          h.deploy(c0, 'succeeded', now);
          fleet.add(h);
        }
      }
      fleet.round = 1;
      prometheus.setTargets(fleet.targets());
      await prometheus.waitFor(async () => Number((await prometheus.query('count(pullnix_sim_round == 1)'))[0]?.value[1] ?? 0) === HOSTS, `Prometheus to scrape ${HOSTS} hosts`, 24_000);

      const config = join(root, 'promote.json');
      writeFileSync(
        config,
        JSON.stringify({
          repository: { url: server.url, firstRingBranch: 'rings/canary', sshKeyFile: server.pushKey, knownHostsFile: server.knownHosts },
          prometheus: { url: prometheus.url, hostLabel: 'host' },
          trust: { allowedSigners: [alice.allowed()] },
          workDir: join(root, 'promote'),
        }),
      );
      const logger = createLogger({ level: 'error', stream: new Writable({ write: (_c, _e, done) => done() }) });
      const status: number[] = [];
      const query: number[] = [];
      let out = '';
      const allSeen = async () => Number((await prometheus.query('count(pullnix_deployed_info)'))[0]?.value[1] ?? 0) === HOSTS;
      for (let i = 0; i < RUNS; i++) {
        // On a loaded machine a scrape can time out and its host go stale for a moment: measure a full fleet.
        await prometheus.waitFor(allSeen, `Prometheus to see all ${HOSTS} hosts`, 24_000);
        let t = performance.now();
        out = '';
        const code = await runPromote(['status', '--config', config], { out: (s) => (out += s), err: (s) => process.stderr.write(`${s}\n`), logger, now: () => Date.now() });
        if (code !== 0) throw new Error(`pullnix-promote status exited ${code}`);
        status.push(performance.now() - t);
        t = performance.now();
        await prometheus.query(`pullnix_deployed_info{commit=~"${c0}"}`);
        query.push(performance.now() - t);
      }
      if (!/^prod +[0-9a-f]{12} +\d+\/900 /m.test(out)) throw new Error(`unexpected status:\n${out}`);
      const figure = median(status);
      return [
        {
          group: 'rings',
          name: `pullnix-promote status, ${HOSTS} hosts (vs one Prometheus query)`,
          figure,
          baseline: median(query),
          unit: 'ms',
          goal: { text: '≤ 1 s', met: figure <= 1000 },
          note: 'status = one git fetch over SSH + the signature check of rings.json + three instant queries',
        },
      ];
    } finally {
      server.stop();
      prometheus.stop();
      await fleet.close();
      alice.cleanup();
    }
  });
}
