/**
 * Scenario 1 — first deploy. A pushed commit is detected, built, activated through systemd-run,
 * verified over SSH, committed (a new real system profile generation, boot default moved), and
 * the watcher restarted (new MainPID). The journal shows each step with its priority.
 *
 *   main: c1 (installed) ─ c2 (pushed by the test)   → c2 deployed
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { short } from './lib/bed.ts';
import { assertEventSequence, installed, ofDeployment, phasesOf, withBed } from './lib/scenario.ts';

test('first deploy: detected, built, activated via systemd-run, verified over SSH, committed, watcher restarted', { timeout: 300_000 }, async (t) => {
  await withBed(t, { name: 'first-deploy' }, async (bed) => {
    const first = await installed(bed);
    const generationsBefore = await bed.profileGenerations();
    const bootLogBefore = bed.bootLog();
    const watcherPid = await bed.mainPid('pullnix-watcher.service');
    const executorPid = await bed.mainPid('pullnix-executor.service');

    const c2 = await bed.commit({ label: 'gen2' }, 'second generation');
    const record = await bed.waitForOutcome(c2);

    // The history: one deployment, asked for by the watcher, with the previous system recorded.
    assert.equal(record.outcome, 'succeeded', `deployment of ${short(c2)}: ${JSON.stringify(record)}`);
    assert.equal(record.kind, 'deploy');
    assert.equal(record.requestedBy, 'watcher');
    assert.equal(record.previous.system, first.toplevel, 'previous.system is what ran before');
    assert.deepEqual(phasesOf(record), ['accepted', 'activating', 'verifying', 'committing', 'finished']);
    assert.equal(record.activationExit, 0);
    assert.match(record.toplevel, /^\/nix\/store\/[a-z0-9]{32}-nixos-system-bed-gen2$/);
    assert.equal(bed.deploymentsOf(c2).length, 1, 'deployed exactly once');

    // A real new generation of /nix/var/nix/profiles/system, and the boot default moved to it.
    const generations = await bed.profileGenerations();
    const newest = Math.max(...generationsBefore.map((g) => g.number));
    assert.equal(record.generation, newest + 1, `generations before: ${JSON.stringify(generationsBefore)}`);
    assert.deepEqual(
      generations.filter((g) => g.current).map((g) => g.number),
      [record.generation],
    );
    assert.equal((await bed.container.execOk(['readlink', '-f', `/nix/var/nix/profiles/system-${record.generation}-link`])).trim(), record.toplevel);
    assert.equal(bed.bootDefault(), record.toplevel, 'boot default moved to the new system');
    assert.equal(bed.bootLog().length, bootLogBefore.length + 1, 'switch-to-configuration boot ran once');
    assert.equal(await bed.liveSystem(), record.toplevel, '/run/current-system is the new system');

    // Activation ran through systemd-run, in a transient unit outside every pullnix cgroup.
    const activations = (await bed.activationLog()).filter((a) => a.text.startsWith(`start toplevel=${record.toplevel}`));
    const tests = activations.filter((a) => a.action === 'test');
    const boots = activations.filter((a) => a.action === 'boot');
    assert.equal(tests.length, 1, `one "test" activation of the new system: ${JSON.stringify(activations)}`);
    assert.match(tests[0]!.cgroup, /\/pullnix-activate-[^/]*\.service$/, 'activation runs in a transient pullnix-activate-* unit');
    assert.doesNotMatch(tests[0]!.cgroup, /pullnix-(executor|watcher)\.service/);
    assert.equal(boots.length, 1, 'switch-to-configuration boot ran once for the new system');

    // The watcher was restarted after the outcome (new MainPID); the executor kept running.
    const newWatcherPid = await bed.waitForWatcherRestart(record.id);
    const entries = await bed.journal();

    // The SSH git server really was asked during verification: sshd logged the deploy key's login
    // between deploy.verifying and deploy.verified.
    const verifyingAt = entries.find((e) => e.event === 'deploy.verifying' && e.fields.deployment === String(record.id))?.at;
    const verifiedAt = entries.find((e) => e.event === 'deploy.verified' && e.fields.deployment === String(record.id))?.at;
    assert.ok(verifyingAt && verifiedAt, 'deploy.verifying and deploy.verified are in the journal');
    const sshd = await bed.journal(['bed-git-sshd.service']);
    assert.ok(
      sshd.some((e) => /Accepted publickey for git from 127\.0\.0\.1/.test(e.message) && e.at >= verifyingAt && e.at <= verifiedAt),
      `verification logged in to the git server over SSH with the deploy key: ${sshd.map((e) => e.message).join(' | ')}`,
    );
    const executorLines = ofDeployment(entries, record.id).filter((e) => e.unit === 'pullnix-executor.service');
    const steps = assertEventSequence(
      executorLines,
      ['deploy.accepted', 'deploy.activating', 'deploy.activated', 'deploy.verifying', 'deploy.verified', 'deploy.committed', 'deploy.succeeded', 'watcher.restarting'],
      `executor journal of deployment ${record.id}`,
    );
    assert.equal(steps[0]!.fields.commit, c2);
    assert.notEqual(newWatcherPid, watcherPid, 'the watcher has a new MainPID');
    assert.notEqual(newWatcherPid, 0);
    assert.equal(await bed.mainPid('pullnix-executor.service'), executorPid, 'the executor kept its MainPID');
    const watcherLines = entries.filter((e) => e.unit === 'pullnix-watcher.service' && e.fields.commit === c2);
    assertEventSequence(watcherLines, ['poll.new_head', 'build.started', 'build.succeeded', 'deploy.requested', 'deploy.outcome'], 'watcher journal');
    assert.ok(
      entries.some((e) => e.unit === 'pullnix-watcher.service' && e.event === 'watcher.started' && e.pid === newWatcherPid),
      'the new watcher process logged watcher.started',
    );

    // And pullnix-ctl agrees.
    const status = await bed.waitForPullnix();
    assert.equal(status.deployed?.commit, c2);
    assert.equal(status.deployed?.toplevel, record.toplevel);
    assert.equal(status.liveSystem, record.toplevel);
    assert.equal(status.paused, null);
  });
});
