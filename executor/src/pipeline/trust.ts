/**
 * End-to-end trust in the executor (issue 21): with trust.mode other than "off", a deploy request
 * is not taken on the watcher's word. Before anything is recorded or activated, root checks
 *
 *   1. the commit: fetched by root itself over the deploy key into an object-only mirror
 *      (`<stateDir>/trust/mirror.git`, nothing checked out), on the configured branch, and its
 *      signature range good by the very rules the watcher applies (shared TrustGate, same
 *      configuration, the last deployed commit as the trusted base);
 *   2. the system: the toplevel asked for is that commit's system. The verified commit is
 *      evaluated by nobody (a transient unit with a dynamic user, no network, read-only file
 *      system, its mirror bound read-only) and the toplevel's outPath must be the one requested.
 *      Output paths are input-addressed, so equality proves the derivation is the commit's.
 *
 * A refusal is the error UNTRUSTED (event deploy.untrusted, stage= says which check), before the
 * deployment is recorded: nothing changes, nothing is lost. The watcher may have been lying, or
 * the remote cannot be reached now; either way no unverified system is activated.
 *
 * Prebuilt mode (source.mode "prebuilt", issue 23, docs/prebuilt.md): the range may hold both
 * roles' commits (humans' source commits, CI's manifest commits), so the range gate reads both
 * roles' keys; the commit asked for must itself be signed by a builder key, and instead of an
 * evaluation its manifest (read by root from the mirror) must name exactly the toplevel asked
 * for. The closure's own signatures were checked by the nix-daemon when the watcher fetched it
 * (an unprivileged user cannot put an unsigned input-addressed path into the store). With
 * source.requireSignedSource root checks the manifest's sourceCommit again too: in the mirror,
 * signed by a human key, descending from the deployed system's sourceCommit.
 */
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describeFailure, lastLines, manifestPath, ManifestError, parseManifest, PullnixError, TrustGate, writeFileAtomic, type Config, type Manifest, type Runner } from '@pullnix/shared';
import { catFile, fetchMirror, initMirror, isAncestor } from '../commands/git.ts';
import { evaluatedPath, evaluationArgv } from '../commands/nix-eval.ts';
import { sandboxedRunArgv, transientUnitName } from '../commands/systemd-run.ts';
import type { PipelineContext } from './context.ts';

/** Where the evaluation sees the mirror and its git configuration (bound read-only into its unit). */
const REPO_IN_UNIT = '/run/pullnix-eval/repo.git';
const GITCONFIG_IN_UNIT = '/run/pullnix-eval/gitconfig';

/**
 * The evaluation's git configuration: the mirror belongs to root, not to the dynamic user, and git
 * refuses such a repository unless safe.directory says so. It must be a file (global config):
 * git drops command-line and environment configuration for the upload-pack of a local fetch.
 */
function evaluationGitConfig(stateDir: string): string {
  const path = join(trustDir(stateDir), 'evaluation.gitconfig');
  writeFileAtomic(path, `[safe]\n\tdirectory = *\n`, { mode: 0o644 });
  return path;
}

export function trustDir(stateDir: string): string {
  return join(stateDir, 'trust');
}

export function mirrorDir(stateDir: string): string {
  return join(trustDir(stateDir), 'mirror.git');
}

/** The executor's gate: its keyring and allowed-signers file in `<stateDir>/trust/gate` (root's). */
export function executorTrustGate(config: Config, runner: Runner): TrustGate {
  const role = config.source.mode === 'prebuilt' ? 'any' : 'human';
  return new TrustGate({ trust: config.trust, runner, gitDir: mirrorDir(config.stateDir), dir: join(trustDir(config.stateDir), 'gate'), role });
}

/** Prebuilt mode: a gate of one role over one commit (trust.mode head), root's own keyring directory. */
function roleGate(config: Config, runner: Runner, role: 'builder' | 'human'): TrustGate {
  return new TrustGate({ trust: { ...config.trust, mode: 'head' }, runner, gitDir: mirrorDir(config.stateDir), dir: join(trustDir(config.stateDir), `gate-${role}`), role });
}

export interface TrustTimings {
  fetchMs: number;
  signaturesMs: number;
  evaluationMs: number;
}

/**
 * Throws UNTRUSTED unless `commit` is a trusted commit of the configured branch and `toplevel`
 * its system. `trusted`: the last commit deployed successfully (the range starts after it).
 */
export async function verifyTrust(ctx: PipelineContext, gate: TrustGate, request: { commit: string; toplevel: string }, trusted: string | null): Promise<TrustTimings | null> {
  const { config, runner, clock } = ctx;
  if (config.trust.mode === 'off') return null;
  const log = ctx.log.child({ commit: request.commit });
  const refuse = (stage: string, message: string, cause?: unknown): never => {
    log.event('deploy.untrusted', { stage, toplevel: request.toplevel, mode: config.trust.mode, reason: message });
    throw new PullnixError('UNTRUSTED', message, cause === undefined ? undefined : { cause });
  };
  const mirror = mirrorDir(config.stateDir);
  const ref = `refs/heads/${config.repository.branch}`;

  let t = clock.now();
  mkdirSync(trustDir(config.stateDir), { recursive: true, mode: 0o700 });
  const init = await initMirror(runner, mirror);
  if (init.exitCode !== 0) refuse('fetch', `the executor's mirror ${mirror} cannot be prepared, so the commit cannot be verified: ${describeFailure(init)}`);
  const fetched = await fetchMirror(runner, config, mirror);
  if (fetched.exitCode !== 0) refuse('fetch', `root could not fetch ${config.repository.url} (${ref}) to verify the commit itself: ${describeFailure(fetched)}`);
  const on = await isAncestor(runner, mirror, request.commit, ref);
  if (on.exitCode !== 0) {
    refuse('fetch', on.exitCode === 1 ? `commit ${request.commit} is not on ${ref} of ${config.repository.url}` : `commit ${request.commit} is not in ${config.repository.url} (${ref}): ${describeFailure(on)}`);
  }
  const fetchMs = clock.now() - t;

  t = clock.now();
  let verdict;
  try {
    verdict = await gate.check(request.commit, [trusted]);
  } catch (error) {
    return refuse('signatures', `the signature check could not run: ${(error as Error).message}`, error);
  }
  if (!verdict.ok) refuse('signatures', `trust.mode ${verdict.mode}: ${verdict.message}`);
  const signaturesMs = clock.now() - t;

  t = clock.now();
  if (config.source.mode === 'prebuilt') await provePrebuilt(ctx, request, trusted, refuse);
  else await proveSystem(ctx, request, refuse);
  const timings = { fetchMs, signaturesMs, evaluationMs: clock.now() - t };
  log.event('deploy.trust_verified', { toplevel: request.toplevel, mode: config.trust.mode, checked: verdict.ok ? verdict.checked : 0, fetch_ms: timings.fetchMs, signatures_ms: timings.signaturesMs, evaluation_ms: timings.evaluationMs });
  return timings;
}

/** Prebuilt: the commit is a builder's, and its manifest names exactly the toplevel asked for. */
async function provePrebuilt(ctx: PipelineContext, request: { commit: string; toplevel: string }, trusted: string | null, refuse: (stage: string, message: string, cause?: unknown) => never): Promise<void> {
  const { config, runner } = ctx;
  const builder = await roleGate(config, runner, 'builder').check(request.commit, []);
  if (!builder.ok) refuse('signatures', `source.mode prebuilt: the manifest commit ${request.commit} is not signed by a builder key: ${builder.reason}: ${builder.message}`);
  const path = manifestPath(config.source, config.build.host ?? hostname());
  const manifest = await readManifest(ctx, mirrorDir(config.stateDir), request.commit, path, refuse);
  if (manifest === null) refuse('system', `source.mode prebuilt: commit ${request.commit} has no manifest ${path}`);
  if (manifest.toplevel !== request.toplevel) refuse('system', `${request.toplevel} is not the system of manifest commit ${request.commit}: its ${path} names ${manifest.toplevel}`);
  if (!config.source.requireSignedSource) return;
  const mirror = mirrorDir(config.stateDir);
  const source = await roleGate(config, runner, 'human').check(manifest.sourceCommit, []);
  if (!source.ok) refuse('signatures', `source.requireSignedSource: sourceCommit ${manifest.sourceCommit} is not signed by a human key: ${source.reason}: ${source.message}`);
  if (trusted === null) return;
  const base = (await readManifest(ctx, mirror, trusted, path, refuse))?.sourceCommit ?? trusted;
  if (base === manifest.sourceCommit) return;
  const descends = await isAncestor(runner, mirror, base, manifest.sourceCommit);
  if (descends.exitCode !== 0) refuse('signatures', `source.requireSignedSource: sourceCommit ${manifest.sourceCommit} does not descend from the deployed system's source ${base}${descends.exitCode === 1 ? '' : `: ${describeFailure(descends)}`}`);
}

/** A commit's manifest in the mirror; null when it has none. */
async function readManifest(ctx: PipelineContext, mirror: string, commit: string, path: string, refuse: (stage: string, message: string, cause?: unknown) => never): Promise<Manifest | null> {
  const { runner, config } = ctx;
  const r = await catFile(runner, mirror, commit, path);
  if (r.exitCode !== 0) {
    if (/fatal: path '.*' (does not exist in|exists on disk, but not in)/.test(r.stderr)) return null;
    return refuse('system', `root could not read ${path} at ${commit}: ${describeFailure(r)}`);
  }
  try {
    return parseManifest(r.stdout, `${path} at ${commit}`, config.paths.storeDir);
  } catch (error) {
    if (error instanceof ManifestError) return refuse('system', error.message, error);
    throw error;
  }
}

/** The toplevel is the commit's system: an unprivileged evaluation of the verified commit must give exactly it. */
async function proveSystem(ctx: PipelineContext, request: { commit: string; toplevel: string }, refuse: (stage: string, message: string) => never): Promise<void> {
  const { config, runner } = ctx;
  const command = evaluationArgv({ build: config.build, host: config.build.host ?? hostname(), repo: REPO_IN_UNIT, branch: config.repository.branch, commit: request.commit });
  const unit = transientUnitName('pullnix-evaluate');
  const argv = sandboxedRunArgv({
    unit,
    command,
    readOnly: [
      [mirrorDir(config.stateDir), REPO_IN_UNIT],
      [evaluationGitConfig(config.stateDir), GITCONFIG_IN_UNIT],
    ],
    // Through the daemon (a dynamic user cannot write the store); caches in its private /tmp.
    env: ['PATH', 'NIX_PATH', 'NIX_REMOTE=daemon', 'HOME=/tmp', 'XDG_CACHE_HOME=/tmp/cache', 'GIT_CONFIG_NOSYSTEM=1', `GIT_CONFIG_GLOBAL=${GITCONFIG_IN_UNIT}`],
    runtimeMaxSec: config.build.timeoutSec,
  });
  const r = await runner(argv, { timeoutMs: config.build.timeoutSec * 1000 + 30_000, killAfterMs: 5000, maxOutputBytes: 1024 * 1024 });
  if (r.exitCode !== 0) refuse('evaluation', `the commit's system could not be evaluated (${unit}, as a dynamic user): ${describeFailure(r)}${r.stderr ? `: ${lastLines(r.stderr, 5)}` : ''}`);
  const evaluated = evaluatedPath(config.build.mode, r.stdout);
  if (evaluated === null) refuse('evaluation', `the evaluation of the commit's system printed no store path: ${JSON.stringify(r.stdout.slice(0, 200))}`);
  if (evaluated !== request.toplevel) refuse('system', `${request.toplevel} is not the system of commit ${request.commit}: evaluated as root's nobody, that commit's toplevel is ${evaluated}`);
}
