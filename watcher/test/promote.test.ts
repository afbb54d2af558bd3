import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, createLogger, parsePromoteConfig, parseRingsFile, type RingSpec } from '@pullnix/shared';
import { run } from '../src/promote/cli.ts';
import { ringHealth, type FleetReport } from '../src/promote/health.ts';
import { fleetReport } from '../src/promote/promote.ts';
import type { Sample } from '../src/promote/prometheus.ts';

const C = 'c'.repeat(40);
const OLD = '0'.repeat(39) + '1';
const ring: RingSpec = { name: 'canary', branch: 'rings/canary', hosts: ['a', 'b', 'c'], soakSec: 600, successes: 3, maxFailures: 0 };

function report(r: Partial<{ deployed: [string, string][]; succeededAt: [string, number][]; last: [string, string, string][] }>): FleetReport {
  return {
    deployed: new Map(r.deployed ?? []),
    succeededAt: new Map(r.succeededAt ?? []),
    lastDeployment: new Map((r.last ?? []).map(([h, commit, outcome]) => [h, { commit, outcome }])),
  };
}

describe('pullnix-promote: ring health', () => {
  it('waiting, then soaking from the success that completed the count, then healthy', () => {
    const two = report({ deployed: [['a', C], ['b', C], ['c', OLD]], succeededAt: [['a', 1000], ['b', 1100]] });
    assert.deepEqual(ringHealth(ring, C, two, 2000), { ring: 'canary', commit: C, succeeded: ['a', 'b'], failed: [], pending: ['c'], soakLeftSec: null, state: 'waiting' });
    const all = report({ deployed: [['a', C], ['b', C], ['c', C]], succeededAt: [['a', 1000], ['b', 1100], ['c', 1200]] });
    assert.equal(ringHealth(ring, C, all, 1500).state, 'soaking');
    assert.equal(ringHealth(ring, C, all, 1500).soakLeftSec, 300);
    assert.equal(ringHealth(ring, C, all, 1800).state, 'healthy');
    // Two successes needed: the soak counts from the second.
    assert.equal(ringHealth({ ...ring, successes: 2 }, C, two, 1700).state, 'healthy');
    assert.equal(ringHealth({ ...ring, successes: 2 }, C, two, 1699).soakLeftSec, 1);
  });

  it('a success whose time is not reported yet counts from now; hosts outside the ring are ignored', () => {
    const r = report({ deployed: [['a', C], ['b', C], ['c', C], ['stranger', C]], succeededAt: [['a', 1000], ['b', 1000]] });
    const h = ringHealth(ring, C, r, 5000);
    assert.equal(h.state, 'soaking');
    assert.equal(h.soakLeftSec, 600);
    assert.equal(h.succeeded.length, 3);
  });

  it('one failure on the commit halts it (maxFailures 0); a failure on another commit does not; reboot-required is pending', () => {
    const r = report({ deployed: [['a', C], ['b', OLD]], last: [['b', C, 'rolled-back'], ['c', OLD, 'rolled-back']], succeededAt: [['a', 0]] });
    const h = ringHealth(ring, C, r, 10_000);
    assert.equal(h.state, 'halted');
    assert.deepEqual([h.failed, h.pending], [['b'], ['c']]);
    assert.equal(ringHealth({ ...ring, maxFailures: 1 }, C, r, 10_000).state, 'waiting');
    assert.deepEqual(ringHealth(ring, C, report({ last: [['a', C, 'reboot-required']] }), 0).pending, ['a', 'b', 'c']);
  });

  it('reads the three queries by the host label, for the ring heads only', async () => {
    const asked: string[] = [];
    const answers: Record<string, Sample[]> = {
      deployed: [{ labels: { host: 'a', commit: C, instance: 'x' }, value: 1 }, { labels: { commit: C }, value: 1 }],
      last: [{ labels: { host: 'b', commit: C, outcome: 'rolled-back' }, value: 1 }],
      ts: [{ labels: { host: 'a', outcome: 'succeeded' }, value: 1234.5 }],
    };
    const r = await fleetReport(async (q) => {
      asked.push(q);
      return q.startsWith('pullnix_deployed_info') ? answers.deployed! : q.startsWith('pullnix_last_deployment_info') ? answers.last! : answers.ts!;
    }, 'host', [C, OLD]);
    assert.deepEqual(asked, [`pullnix_deployed_info{commit=~"${C}|${OLD}"}`, `pullnix_last_deployment_info{commit=~"${C}|${OLD}"}`, 'pullnix_last_deployment_timestamp_seconds{outcome="succeeded"}']);
    assert.deepEqual([...r.deployed], [['a', C]]);
    assert.deepEqual([...r.lastDeployment], [['b', { commit: C, outcome: 'rolled-back' }]]);
    assert.deepEqual([...r.succeededAt], [['a', 1234.5]]);
  });
});

describe('pullnix-promote: its files', () => {
  const rings = (rs: unknown[]) => JSON.stringify({ rings: rs });
  it('rings.json: defaults resolved; a host in two rings, a duplicate name, too many successes refused', () => {
    const f = parseRingsFile(rings([{ name: 'canary', hosts: ['a'] }, { name: 'prod', hosts: ['b', 'c'], soakSec: 0 }]));
    assert.deepEqual(f.rings[0], { name: 'canary', branch: 'rings/canary', hosts: ['a'], soakSec: 3600, successes: 1, maxFailures: 0 });
    assert.equal(f.rings[1]!.successes, 2);
    assert.throws(
      () => parseRingsFile(rings([{ name: 'x', hosts: ['a'], successes: 2 }, { name: 'x', hosts: ['a'] }])),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.problems.join('\n') ===
          [
            'rings.0.successes: 2 is more than the ring\'s 1 hosts; the ring could never be healthy',
            'rings.1.name: "x" is also ring 0\'s',
            'rings.1.branch: "rings/x" is also ring 0\'s',
            'rings.1.hosts: "a" is also in ring 0 (x); a host belongs to one ring',
          ].join('\n'),
    );
    assert.throws(() => parseRingsFile(rings([{ name: 'only', hosts: ['a'] }])), /rings: must NOT have fewer than 2 items/);
    assert.throws(() => parseRingsFile(rings([{ name: 'a', hosts: ['a'], soak: 1 }, { name: 'b', hosts: ['b'] }])), /rings\.0\.soak: unknown key/);
  });

  it('the promote config: a key is required to trust rings.json', () => {
    const base = { repository: { url: 'ssh://git@example.org/cfg.git', firstRingBranch: 'rings/canary' }, prometheus: { url: 'http://prometheus:9090' } };
    assert.throws(() => parsePromoteConfig(JSON.stringify({ ...base, trust: {} })), /trust: no key; rings\.json is read only from a commit signed by a trusted key/);
    const c = parsePromoteConfig(JSON.stringify({ ...base, trust: { allowedSigners: [{ principal: 'alice', key: 'ssh-ed25519 AAAA' }] } }));
    assert.equal(c.prometheus.hostLabel, 'instance');
    assert.equal(c.workDir, '/var/cache/pullnix-promote');
    // A signer without a role is a human (shared/src/trust.ts): rings.json is a human decision, never a builder's.
    assert.deepEqual(c.trust.allowedSigners[0], { principal: 'alice', key: 'ssh-ed25519 AAAA', validAfter: null, validBefore: null, role: 'human' });
  });

  it('the command line: usage errors exit 64', async () => {
    const err: string[] = [];
    const io = { out: () => {}, err: (s: string) => err.push(s), logger: createLogger({ level: 'error' }), now: () => 0 };
    assert.equal(await run(['status'], io), 64);
    assert.match(err[0]!, /--config FILE is required/);
    assert.equal(await run(['status', '--config', 'x', '--dry-run'], io), 64);
  });
});
