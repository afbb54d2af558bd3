/**
 * Human output of each command. `now` is passed in so relative times are testable. Every answer is
 * passed through `printableDeep` first: subjects, refs, errors and names come from git, a forge or
 * the network, and must not reach the terminal as control sequences.
 */
import { shortCommit, type CheckResult, type DeploymentRecord, type PrebuiltProvenance, type StatusResult, type VulnerabilityFinding, type VulnerabilityScan } from '@pullnix/shared/client';
import { duration, fields, firstLine, printableDeep, quoted, relativeTime, table, type Style } from './format.ts';
import type { CtlSettings } from './context.ts';
import type { KeyOutput, VersionOutput } from './schemas.ts';

export interface RenderContext {
  style: Style;
  now: number;
  settings: CtlSettings;
  /** Terminal width when stdout is a terminal; long reasons are cut to it. */
  width?: number;
}

function outcomeText(d: DeploymentRecord, s: Style): string {
  if (d.outcome === null) return s.yellow(`running: ${d.phase}`);
  switch (d.outcome) {
    case 'succeeded':
      return s.green('succeeded');
    case 'rolled-back':
    case 'rollback-failed':
      return s.red(d.outcome);
    default:
      return s.yellow(d.outcome);
  }
}

export function renderStatus(given: StatusResult, ctx: RenderContext): string {
  const st = printableDeep(given);
  const { style: s, now } = ctx;
  const rows: [string, string][] = [];
  const report = st.watcher.report;
  const subjectOf = (commit: string) => {
    for (const info of [report?.deployedCommit, report?.remoteHead]) if (info && info.commit === commit) return info;
    return null;
  };

  // state
  if (st.current) {
    const c = st.current;
    const since = c.phases.at(-1)?.at ?? c.startedAt;
    rows.push(['state', `${s.yellow('deploying')} #${c.id} ${shortCommit(c.commit)}${c.kind === 'rollback' ? ' (rollback)' : ''}: ${c.phase} since ${relativeTime(since, now)}, asked by ${c.requestedBy}`]);
    if (c.phase === 'reboot-pending') rows.push(['reboot', `${s.yellow(`reboot pending until ${c.reboot?.windowStart ?? '?'}`)} ${s.dim(`(${(c.reboot?.reasons ?? []).join(', ') || 'needs a reboot'}; or now: pullnix-ctl reboot-now)`)}`]);
    else if (c.phase === 'awaiting-boot') rows.push(['reboot', s.yellow(`trial boot: the machine reboots into the new system once${c.reboot?.oneShotEntry ? ` (${c.reboot.oneShotEntry})` : ''}`)]);
    else if (c.phase === 'fallback-reboot') rows.push(['reboot', s.red('the trial system failed: rebooting into the previous system')]);
  } else rows.push(['state', st.executor.busy ? s.yellow('busy') : 'idle']);

  // paused
  if (st.paused) {
    const why = st.paused.reason ? `: ${quoted(st.paused.reason)}` : '';
    rows.push(['paused', `${s.yellow('yes')}, by ${st.paused.by} ${relativeTime(st.paused.since, now)}${why}`]);
    rows.push(['', s.dim('deployments are refused until: pullnix-ctl resume')]);
  } else rows.push(['paused', 'no']);

  // deployed
  if (st.deployed) {
    const d = st.deployed;
    const info = subjectOf(d.commit);
    const subject = info?.subject ? ` ${quoted(info.subject)}` : '';
    const committed = info?.time ? `, committed ${relativeTime(info.time, now)}` : '';
    const gen = d.generation === null ? '' : `, generation ${d.generation}`;
    rows.push(['deployed', `${s.bold(shortCommit(d.commit))}${subject}`]);
    rows.push(['', `deployment #${d.deploymentId}, deployed ${relativeTime(d.at, now)}${committed}${gen}`]);
    if (d.rebootRequired && d.rebootRequired.length > 0) rows.push(['', s.yellow(`reboot required: its ${d.rebootRequired.join(', ')} take${d.rebootRequired.length === 1 ? 's' : ''} effect at the next boot`)]);
  } else rows.push(['deployed', s.dim('nothing deployed by pullnix yet')]);

  // live system
  if (st.liveSystem === null) rows.push(['live', s.dim('unknown (the current-system link cannot be read)')]);
  else if (st.deployed && st.liveSystem !== st.deployed.toplevel && !st.current) {
    rows.push(['live', `${st.liveSystem} ${s.yellow('(not the deployed system)')}`]);
  } else rows.push(['live', st.liveSystem]);

  // remote head and drift
  const head = report?.remoteHead ?? null;
  if (!head) rows.push(['remote', s.dim(st.watcher.connected ? 'not known yet (the watcher has not reported a head)' : 'unknown (no watcher report)')]);
  else {
    let drift: string;
    const refused = st.drift === true && report?.refusedHead?.commit === head.commit ? report.refusedHead : null;
    if (refused) {
      const from = refused.deployed ? ` ${shortCommit(refused.deployed)}` : '';
      drift = s.red(`refused: not a descendant of the deployed commit${from} (force-push or history rewrite)`);
    } else if (st.drift === true) {
      drift = st.knownBad.includes(head.commit) ? s.red('drift: the head failed before and is not retried (pullnix-ctl retry COMMIT)') : s.yellow('drift: the head is not deployed yet');
    } else if (st.drift === false) drift = s.green('in sync');
    else drift = s.dim('drift unknown');
    const committed = head.time ? `, committed ${relativeTime(head.time, now)}` : '';
    rows.push(['remote', `${shortCommit(head.commit)} ${quoted(head.subject)}${committed}`.replace(/ +/g, ' ')]);
    rows.push(['', drift]);
    // The phased start's word on the head (ring.phases): "phased: waiting, 10 % of ring prod allowed, this host at 37 %".
    const phased = report?.phased?.commit === head.commit ? report.phased : null;
    if (phased && st.drift === true) rows.push(['', phased.allowed ? s.dim(phased.message) : s.yellow(phased.message)]);
    if (refused) {
      rows.push(['', s.dim(`to deploy it: push a commit that descends from${refused.deployed ? ` ${shortCommit(refused.deployed)}` : ' the deployed one'}, or set repository.allowNonDescendant = true,`)]);
      rows.push(['', s.dim(`restart ${ctx.settings.units.watcher} and run: pullnix-ctl retry ${shortCommit(head.commit)}`)]);
    }
  }

  // last failure
  if (st.lastFailure) {
    const f = st.lastFailure;
    rows.push(['last failure', `${s.red(f.outcome)} #${f.deploymentId} ${shortCommit(f.commit)} ${relativeTime(f.at, now)}`]);
    // A failed verification names its checks plainly, instead of the combined reason.
    const checks = f.failedChecks ?? [];
    if (checks.length === 0) rows.push(['', firstLine(f.reason, 160)]);
    for (const [i, c] of checks.entries()) rows.push([i === 0 ? 'failed check' : '', `${s.red(c.name)} (${c.kind}): ${firstLine(c.error ?? 'failed', 160)}`]);
  } else rows.push(['last failure', 'none']);
  if (st.knownBad.length > 0) rows.push(['known bad', `${st.knownBad.map((c) => shortCommit(c)).join(', ')} ${s.dim('(not deployed again until: pullnix-ctl retry COMMIT)')}`]);

  // watcher
  if (st.watcher.connected) {
    const state = report ? `${report.state} (pid ${report.pid}, ${report.version})` : 'no report yet';
    rows.push(['watcher', `${s.green('connected')}, ${state}`]);
  } else {
    rows.push(['watcher', `${s.red('not connected')} ${s.dim(`(systemctl status ${ctx.settings.units.watcher})`)}`]);
  }
  if (report) {
    const polls: string[] = [];
    if (report.lastPollAt) polls.push(`last poll ${relativeTime(report.lastPollAt, now)}`);
    if (report.nextPollAt) polls.push(`next poll ${relativeTime(report.nextPollAt, now)}`);
    if (polls.length > 0) rows.push(['', polls.join(', ')]);
    if (report.lastError?.kind === 'machine') {
      // The machine's fault (nix-daemon, network, disk, timeout): retried, never held against the commit.
      rows.push(['', s.yellow(`last error (the machine's, not the commit's; retried, ${relativeTime(report.lastError.at, now)}): ${firstLine(report.lastError.message, 160)}`)]);
    } else if (report.lastError) rows.push(['', s.red(`last error (${report.lastError.kind}, ${relativeTime(report.lastError.at, now)}): ${firstLine(report.lastError.message, 160)}`)]);
    if (report.failedBuilds.length > 0) rows.push(['', `failed builds: ${report.failedBuilds.map((c) => shortCommit(c)).join(', ')}`]);
    const u = report.untrusted;
    if (u) {
      rows.push(['trust', s.red(`refused head ${shortCommit(u.head)}${u.commit ? `: commit ${shortCommit(u.commit)}` : ''} ${u.reason} ${relativeTime(u.at, now)}`)]);
      rows.push(['', `${firstLine(u.message, 160)} ${s.dim(`(not evaluated; checked again when the branch moves or: pullnix-ctl retry ${shortCommit(u.head)})`)}`]);
    }
  }
  if (report?.vulnerabilities) rows.push(...vulnerabilityRows(report.vulnerabilities, ctx));
  if (report?.prebuilt) rows.push(['source', prebuiltLine(report.prebuilt)]);

  rows.push(['executor', `pullnix ${st.version}, pid ${st.executor.pid}, up ${duration(now - Date.parse(st.executor.startedAt))}`]);
  return fields(rows);
}

/** "prebuilt <toplevel> ← <sourceCommit> (manifest <sha>, signed by <builder key>, cache key <name>)" (docs/prebuilt.md). */
export function prebuiltLine(p: PrebuiltProvenance): string {
  return `prebuilt ${p.toplevel} ← ${p.sourceCommit} (manifest ${shortCommit(p.manifestCommit)}, signed by ${p.signer ?? 'nobody: trust.mode off'}, cache key ${p.cacheKey ?? 'unknown'})`;
}

/** The vulnerability gate's last decision: what a commit would bring in, and what it fixes. */
function vulnerabilityRows(v: VulnerabilityScan, ctx: RenderContext): [string, string][] {
  const { style: s, now } = ctx;
  const list = (fs: readonly VulnerabilityFinding[], total: number) => {
    const shown = fs.slice(0, 5).map((f) => `${f.id} (${f.package}${f.version ? ` ${f.version}` : ''}, ${f.score === null ? 'no score' : f.score.toFixed(1)})`);
    return shown.join(', ') + (total > shown.length ? `, and ${total - shown.length} more` : '');
  };
  const about = `${shortCommit(v.commit)} ${relativeTime(v.at, now)}`;
  const rows: [string, string][] = [];
  switch (v.decision) {
    case 'passed':
      rows.push(['security', `${s.green('passed')} ${about}: no new vulnerability at or above CVSS ${v.minSeverity}`]);
      break;
    case 'refused':
      if (v.error !== null) rows.push(['security', `${s.red('refused')} ${about}: the scan ran, but its report cannot be read: ${firstLine(v.error, 160)}`]);
      else {
        rows.push(['security', `${s.red('refused')} ${about}: ${v.counts.new} new vulnerabilit${v.counts.new === 1 ? 'y' : 'ies'} at or above CVSS ${v.minSeverity}`]);
        rows.push(['', s.red(list(v.new, v.counts.new))]);
      }
      rows.push(['', s.dim('not deployed until a newer commit or: pullnix-ctl retry COMMIT')]);
      break;
    case 'warned':
      rows.push(['security', `${s.yellow('deployed with new vulnerabilities')} ${about} (onNew = warn): ${list(v.new, v.counts.new)}`]);
      break;
    default:
      rows.push(['security', `${s.yellow(`vulnerability scan failed (${v.decision === 'error-allowed' ? 'deployed anyway' : 'not deployed, tried again'})`)} ${about}: ${firstLine(v.error ?? '', 160)}`]);
  }
  if (v.counts.allowed > 0) rows.push(['', `allowed on purpose: ${list(v.allowed, v.counts.allowed)}`]);
  if (v.counts.fixed > 0) rows.push(['', s.green(`fixes ${v.counts.fixed}: ${list(v.fixed, v.counts.fixed)}`)]);
  return rows;
}

export function renderHistory(given: { deployments: DeploymentRecord[]; total: number }, ctx: RenderContext): string {
  const h = printableDeep(given);
  const { style: s, now } = ctx;
  if (h.deployments.length === 0) return 'no deployments yet';
  const rows = h.deployments.map((d) => [
    String(d.id),
    relativeTime(d.startedAt, now),
    shortCommit(d.commit),
    d.kind,
    outcomeText(d, s),
    d.generation === null ? '-' : String(d.generation),
    d.requestedBy,
    d.error ? firstLine(d.error.message) : '',
  ]);
  const out = table(['ID', 'WHEN', 'COMMIT', 'KIND', 'OUTCOME', 'GEN', 'BY', 'REASON'], rows, s, ctx.width);
  const more = h.total > h.deployments.length ? `\n${s.dim(`${h.deployments.length} of ${h.total} shown; --limit N for more`)}` : '';
  return out + more;
}

export function renderDeployment(given: DeploymentRecord, ctx: RenderContext): string {
  const d = printableDeep(given);
  const { style: s, now } = ctx;
  const rows: [string, string][] = [
    ['deployment', `#${d.id} (${d.kind}), asked by ${d.requestedBy}`],
    ['commit', d.commit],
    ['system', d.toplevel],
    ['outcome', outcomeText(d, s)],
  ];
  if (d.generation !== null) rows.push(['generation', String(d.generation)]);
  if (d.error) rows.push(['reason', `${d.error.code}: ${firstLine(d.error.message, 300)}`]);
  for (const [i, c] of (d.checks ?? []).entries()) rows.push([i === 0 ? 'checks' : '', checkLine(c, s)]);
  rows.push(['started', relativeTime(d.startedAt, now)]);
  if (d.finishedAt) rows.push(['finished', relativeTime(d.finishedAt, now)]);
  return fields(rows);
}

function checkLine(c: CheckResult, s: Style): string {
  const tries = `${c.attempts} attempt${c.attempts === 1 ? '' : 's'}`;
  if (c.passed === null) return `${c.name} ${s.dim('not run')}`;
  if (c.passed) return `${c.name} ${s.green('passed')} (${tries})${c.preexisting?.length ? s.dim(`; failed before, not blamed: ${c.preexisting.join(', ')}`) : ''}`;
  return `${c.name} ${s.red('FAILED')} (${tries}): ${firstLine(c.error ?? '', 200)}`;
}

export function renderVersion(given: VersionOutput): string {
  const v = printableDeep(given);
  const lines = [`pullnix-ctl ${v.version} (protocol v${v.protocol})`];
  if (v.executor) lines.push(`pullnix-executor ${v.executor.version} (pid ${v.executor.pid})`);
  else if (v.executorError) lines.push(`pullnix-executor: not asked (${v.executorError.code}: ${firstLine(v.executorError.message)})`);
  return lines.join('\n');
}

export function renderKey(k: KeyOutput, created: boolean): string {
  const lines = [
    created ? `created ${k.file} (mode 0600; keep it private)` : `key file   ${k.file}`,
    `key id     ${k.keyId}`,
    `public key ${k.publicKey}`,
    '',
    'To let this key operate a machine, add it to the machine\'s NixOS configuration and deploy:',
    '',
    `  services.pullnix.settings.operators.keys = [ ${k.nixos} ];`,
  ];
  return lines.join('\n');
}
