import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeStyle } from '../../src/ctl/format.ts';
import { renderDeployment, renderHistory, renderStatus, type RenderContext } from '../../src/ctl/render.ts';
import { ago, BAD, busyStatus, DEPLOYED, deployment, HEAD, NOW, quietStatus, SETTINGS, SYSTEM } from './fixtures.ts';

const plain: RenderContext = { style: makeStyle(false), now: NOW, settings: SETTINGS };

describe('ctl render', () => {
  it('status: a running deployment, a pause, a failure, drift to a known-bad head, the watcher', () => {
    const out = renderStatus(busyStatus(), plain);
    const expected = [
      'state         deploying #7 feedface: verifying since 20 s ago, asked by watcher',
      'paused        yes, by alice 5 min ago: "disk replacement"',
      '              deployments are refused until: pullnix-ctl resume',
      'deployed      33333333 "Pin nixpkgs"',
      '              deployment #6, deployed 2 h ago, committed 24 h ago, generation 42',
      `live          ${SYSTEM}`,
      'remote        feedface "Enable nginx", committed 10 min ago',
      '              drift: the head is not deployed yet',
      'last failure  rolled-back #5 deadbeef 3 days ago',
      '              verification failed: git ls-remote: Could not resolve host',
      'known bad     deadbeef (not deployed again until: pullnix-ctl retry COMMIT)',
      'watcher       connected, deploying (pid 900, 0.1.0)',
      '              last poll 30 s ago, next poll in 4 min',
      '              last error (build, 1 h ago): error: builder for foo failed',
      '              failed builds: deadbeef',
      'executor      pullnix 0.1.0, pid 812, up 3 h 2 min',
    ];
    assert.deepEqual(out.split('\n'), expected);
  });

  it("status: a failure of the machine's (nix-daemon, network) is shown as such: retried, not the commit's", () => {
    const st = busyStatus();
    st.watcher.report = { ...st.watcher.report!, lastError: { kind: 'machine', message: "the build of feedface failed for a reason of the machine's (cannot connect to socket at '/nix/var/nix/daemon-socket/socket'), not the commit's; tried again", at: ago(60), commit: HEAD }, failedBuilds: [] };
    const lines = renderStatus(st, plain).split('\n');
    assert.ok(lines.includes("              last error (the machine's, not the commit's; retried, 1 min ago): the build of feedface failed for a reason of the machine's (cannot connect to socket at '/nix/var/nix/daemon-socket/socket'), not the commit's; tried again"), lines.join('\n'));
    assert.ok(!lines.some((l) => l.startsWith('              failed builds')));
  });

  it('status: a deployment waiting for the reboot window says until when; a deployed kernel not yet booted says reboot required', () => {
    const st = busyStatus();
    st.current = { ...st.current!, phase: 'reboot-pending', reboot: { needed: true, reasons: ['kernel'], mode: 'window', pendingUntil: '2026-03-02T01:00:00.000Z', windowStart: '01:00' } };
    st.deployed = { ...st.deployed!, rebootRequired: ['kernel', 'initrd'] };
    const lines = renderStatus(st, plain).split('\n');
    assert.ok(lines.includes('reboot        reboot pending until 01:00 (kernel; or now: pullnix-ctl reboot-now)'), lines.join('\n'));
    assert.ok(lines.includes('              reboot required: its kernel, initrd take effect at the next boot'), lines.join('\n'));
  });

  it('status: a failed verification names the failing check plainly, instead of the combined reason', () => {
    const st = busyStatus();
    st.lastFailure = {
      ...st.lastFailure!,
      reason: 'check web failed: GET http://127.0.0.1/health failed 6 times within verify.timeoutSec=120; last: status 502, expected 2xx',
      failedChecks: [{ name: 'web', kind: 'http', error: 'GET http://127.0.0.1/health failed 6 times within verify.timeoutSec=120; last: status 502, expected 2xx' }],
    };
    const lines = renderStatus(st, plain).split('\n');
    const i = lines.findIndex((l) => l.startsWith('last failure'));
    assert.deepEqual(lines.slice(i, i + 3), [
      'last failure  rolled-back #5 deadbeef 3 days ago',
      'failed check  web (http): GET http://127.0.0.1/health failed 6 times within verify.timeoutSec=120; last: status 502, expected 2xx',
      'known bad     deadbeef (not deployed again until: pullnix-ctl retry COMMIT)',
    ]);
  });

  it('a deployment lists its checks: passed, failed, not run, and units that failed before', () => {
    const checks = [
      { name: 'git', kind: 'git' as const, passed: true, attempts: 1, error: null, startedAt: ago(10), durationMs: 300 },
      { name: 'failed-units', kind: 'units' as const, passed: false, attempts: 8, error: 'units failed after activation (not before it): crashy.service', units: ['crashy.service'], preexisting: ['old.service'], startedAt: ago(9), durationMs: 7000 },
      { name: 'web', kind: 'http' as const, passed: null, attempts: 0, error: null, startedAt: null, durationMs: 0 },
    ];
    const out = renderDeployment(deployment({ phase: 'finished', outcome: 'rolled-back', finishedAt: ago(1), checks }), plain);
    assert.match(out, /^checks +git passed \(1 attempt\)$/m);
    assert.match(out, /^ +failed-units FAILED \(8 attempts\): units failed after activation \(not before it\): crashy\.service$/m);
    assert.match(out, /^ +web not run$/m);
  });

  it('status: nothing yet, and a live system that is not the deployed one', () => {
    assert.deepEqual(renderStatus(quietStatus(), plain).split('\n'), [
      'state         idle',
      'paused        no',
      'deployed      nothing deployed by pullnix yet',
      'live          unknown (the current-system link cannot be read)',
      'remote        unknown (no watcher report)',
      'last failure  none',
      'watcher       not connected (systemctl status pullnix-watcher.service)',
      'executor      pullnix 0.1.0, pid 812, up 50 s',
    ]);
    const st = busyStatus();
    st.current = null;
    st.liveSystem = '/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-nixos-system-by-hand';
    st.watcher.report!.remoteHead = { commit: BAD, subject: null, time: null };
    const out = renderStatus(st, plain);
    assert.match(out, /^live +\/nix\/store\/z+-nixos-system-by-hand \(not the deployed system\)$/m);
    assert.match(out, /drift: the head failed before and is not retried \(pullnix-ctl retry COMMIT\)/);
  });

  it('status: a head refused by the commit-signature check names the commit and the reason', () => {
    const st = busyStatus();
    st.watcher.report!.untrusted = { head: HEAD, commit: BAD, reason: 'unsigned', message: `commit ${BAD} ("sneaked in"): not signed`, at: ago(120) };
    const lines = renderStatus(st, plain).split('\n');
    const at = lines.indexOf('trust         refused head feedface: commit deadbeef unsigned 2 min ago');
    assert.ok(at > 0, lines.join('\n'));
    assert.equal(lines[at + 1], `              commit ${BAD} ("sneaked in"): not signed (not evaluated; checked again when the branch moves or: pullnix-ctl retry feedface)`);
    st.watcher.report!.untrusted = null;
    assert.doesNotMatch(renderStatus(st, plain), /^trust/m);
  });

  it('status, history, a deployment: control characters from git or the network are shown escaped, never sent to the terminal', () => {
    // A subject that would retitle the terminal, clear the screen (C1 CSI) and reverse the text after it.
    const hostile = 'fix\u001b]0;pwned\u0007 \u009b2J\u202eevil\nforged line';
    const st = busyStatus();
    st.watcher.report!.untrusted = { head: HEAD, commit: BAD, reason: 'unsigned', message: `commit ${BAD} ("${hostile}"): not signed`, at: ago(120) };
    st.watcher.report!.remoteHead = { ...st.watcher.report!.remoteHead!, subject: hostile };
    st.lastFailure = { ...st.lastFailure!, failedChecks: [{ name: hostile, kind: 'http', error: hostile }] };
    const bad = deployment({ requestedBy: hostile, error: { code: 'VERIFY_FAILED', message: hostile } });
    const outputs = [renderStatus(st, plain), renderHistory({ deployments: [bad], total: 1 }, plain), renderDeployment(bad, plain)];
    for (const out of outputs) {
      assert.doesNotMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/, out);
      assert.match(out, /fix\\x1b\]0;pwned\\x07 \\x9b2J\\u202eevil/);
      assert.doesNotMatch(out, /^forged line/m);
    }
    assert.ok(outputs[0]!.includes('remote        feedface "fix\\x1b]0;pwned\\x07 \\x9b2J\\u202eevil'), outputs[0]);
  });

  it("status: the vulnerability gate's last decision (refused with the new CVEs, passed with what it fixes, a failed scan)", () => {
    const st = busyStatus();
    const libfoo = { id: 'CVE-2099-0001', package: 'libfoo', version: '2.0', score: 9.8 };
    const heartbleed = { id: 'CVE-2014-0160', package: 'openssl', version: '1.0.1', score: 7.5 };
    const base = { commit: BAD, toplevel: SYSTEM, liveSystem: SYSTEM, at: ago(3600), minSeverity: 7, allowed: [], error: null };
    st.watcher.report!.vulnerabilities = { ...base, decision: 'refused', new: [libfoo], fixed: [heartbleed], counts: { new: 1, fixed: 1, allowed: 0 } };
    const lines = renderStatus(st, plain).split('\n');
    const at = lines.findIndex((l) => l.startsWith('security'));
    assert.deepEqual(lines.slice(at, at + 4), [
      'security      refused deadbeef 1 h ago: 1 new vulnerability at or above CVSS 7',
      '              CVE-2099-0001 (libfoo 2.0, 9.8)',
      '              not deployed until a newer commit or: pullnix-ctl retry COMMIT',
      '              fixes 1: CVE-2014-0160 (openssl 1.0.1, 7.5)',
    ]);
    st.watcher.report!.vulnerabilities = { ...base, decision: 'passed', new: [], fixed: Array(7).fill(heartbleed), counts: { new: 0, fixed: 7, allowed: 0 } };
    const passed = renderStatus(st, plain);
    assert.match(passed, /^security +passed deadbeef 1 h ago: no new vulnerability at or above CVSS 7$/m);
    assert.match(passed, /^ +fixes 7: (CVE-2014-0160 \(openssl 1\.0\.1, 7\.5\), ){4}CVE-2014-0160 \(openssl 1\.0\.1, 7\.5\), and 2 more$/m);
    st.watcher.report!.vulnerabilities = { ...base, decision: 'error-allowed', new: [], fixed: [], counts: { new: 0, fixed: 0, allowed: 0 }, error: 'vulnix exited 1 without a JSON report: ConnectionError' };
    assert.match(renderStatus(st, plain), /^security +vulnerability scan failed \(deployed anyway\) deadbeef 1 h ago: vulnix exited 1 without a JSON report: ConnectionError$/m);
    st.watcher.report!.vulnerabilities = { ...base, decision: 'refused', new: [], fixed: [], counts: { new: 0, fixed: 0, allowed: 0 }, error: 'vulnix exited 2 after a scan, but its report (262144 bytes) is not JSON: Unexpected end of JSON input' };
    assert.match(renderStatus(st, plain), /^security +refused deadbeef 1 h ago: the scan ran, but its report cannot be read: vulnix exited 2 after a scan/m);
    delete st.watcher.report!.vulnerabilities;
    assert.doesNotMatch(renderStatus(st, plain), /security/);
  });

  it('status: a prebuilt system names its source: toplevel, source commit, manifest commit, builder key, cache key (issue 23)', () => {
    const st = busyStatus();
    const src = 'a'.repeat(40);
    st.watcher.report!.prebuilt = { toplevel: SYSTEM, sourceCommit: src, manifestCommit: DEPLOYED, signer: 'ci@example.org', cacheKey: 'ci.example.org-1' };
    const lines = renderStatus(st, plain).split('\n');
    assert.ok(lines.includes(`source        prebuilt ${SYSTEM} ← ${src} (manifest ${DEPLOYED.slice(0, 8)}, signed by ci@example.org, cache key ci.example.org-1)`), lines.join('\n'));
    st.watcher.report!.prebuilt = null;
    assert.ok(!renderStatus(st, plain).split('\n').some((l) => l.startsWith('source')));
  });

  it('status: a head refused as a non-descendant reads as refused, with how to accept it', () => {
    const st = busyStatus();
    st.watcher.report!.refusedHead = { commit: HEAD, reason: 'not-descendant', deployed: DEPLOYED, at: ago(600) };
    const lines = renderStatus(st, plain).split('\n');
    const at = lines.indexOf('remote        feedface "Enable nginx", committed 10 min ago');
    assert.deepEqual(lines.slice(at + 1, at + 4), [
      '              refused: not a descendant of the deployed commit 33333333 (force-push or history rewrite)',
      '              to deploy it: push a commit that descends from 33333333, or set repository.allowNonDescendant = true,',
      '              restart pullnix-watcher.service and run: pullnix-ctl retry feedface',
    ]);
    assert.equal(lines.filter((l) => l.includes('not deployed yet')).length, 0);
    // A refusal of an earlier head says nothing about this one.
    st.watcher.report!.refusedHead = { commit: BAD, reason: 'not-descendant', deployed: DEPLOYED, at: ago(600) };
    assert.match(renderStatus(st, plain), /drift: the head is not deployed yet/);
  });

  it("status: the phased start's word on the head (ring.phases)", () => {
    const st = busyStatus();
    st.watcher.report!.phased = { commit: HEAD, allowed: false, message: 'phased: waiting, 10 % of ring prod allowed, this host at 37 %, its turn at 2026-12-07T02:00:00.000Z' };
    const lines = renderStatus(st, plain).split('\n');
    const at = lines.indexOf('remote        feedface "Enable nginx", committed 10 min ago');
    assert.deepEqual(lines.slice(at + 1, at + 3), ['              drift: the head is not deployed yet', '              phased: waiting, 10 % of ring prod allowed, this host at 37 %, its turn at 2026-12-07T02:00:00.000Z']);
    // A decision on an earlier head says nothing about this one.
    st.watcher.report!.phased = { commit: BAD, allowed: false, message: 'phased: waiting, 10 % of ring prod allowed, this host at 37 %' };
    assert.doesNotMatch(renderStatus(st, plain), /phased/);
  });

  it('colours problems only when colour is on', () => {
    const coloured = renderStatus(busyStatus(), { ...plain, style: makeStyle(true) });
    assert.match(coloured, /\u001b\[31mrolled-back\u001b\[39m/);
    assert.match(coloured, /\u001b\[33myes\u001b\[39m/);
    assert.doesNotMatch(renderStatus(busyStatus(), plain), /\u001b/);
  });

  it('history: running and failed deployments, totals', () => {
    const out = renderHistory(
      {
        deployments: [deployment(), deployment({ id: 6, commit: BAD, kind: 'rollback', phase: 'finished', outcome: 'rolled-back', error: { code: 'INTERNAL', message: 'activation failed (exit 4)\ndetails' }, finishedAt: ago(0) })],
        total: 9,
      },
      plain,
    );
    assert.deepEqual(out.split('\n'), [
      'ID  WHEN       COMMIT    KIND      OUTCOME             GEN  BY       REASON',
      '7   1 min ago  feedface  deploy    running: verifying  -    watcher',
      '6   1 min ago  deadbeef  rollback  rolled-back         -    watcher  activation failed (exit 4)',
      '2 of 9 shown; --limit N for more',
    ]);
  });

  it('a rollback result', () => {
    const out = renderDeployment(deployment({ kind: 'rollback', phase: 'finished', outcome: 'succeeded', generation: 43, finishedAt: ago(1) }), plain);
    assert.match(out, /^deployment +#7 \(rollback\), asked by watcher$/m);
    assert.match(out, /^outcome +succeeded$/m);
    assert.match(out, /^generation +43$/m);
  });
});
