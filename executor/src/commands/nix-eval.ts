/**
 * The evaluation that proves a toplevel is a commit's system (pipeline/trust.ts): the system's
 * `outPath`, evaluated from the verified commit in the executor's mirror, the same attribute the
 * watcher builds (watcher/src/commands/nix-build.ts buildArgv). Output paths are input-addressed: equal
 * outPath, same derivation, same system.
 *
 *   flake    nix eval --raw 'git+file://<repo>?ref=<branch>&rev=<commit>#nixosConfigurations."<host>".config.system.build.toplevel.outPath'
 *   classic  nix-instantiate --eval --json --read-write-mode -E '(import <nixpkgs/nixos> { configuration = (builtins.fetchGit {…}) + "/<file>"; }).system.outPath'
 *
 * Both fetch the commit by its id from the repository (Nix checks the revision), so nothing else
 * of the mirror is read. It never runs as root: see sandboxedRunArgv (systemd-run.ts).
 */
import type { Config } from '@pullnix/shared';

export interface EvaluationTarget {
  build: Config['build'];
  host: string;
  /** The repository as the evaluation sees it (inside its unit). */
  repo: string;
  branch: string;
  commit: string;
}

export function evaluationArgv(t: EvaluationTarget): string[] {
  const url = `file://${t.repo}`;
  if (t.build.mode === 'flake') {
    const ref = `git+${url}?ref=${encodeURIComponent(`refs/heads/${t.branch}`)}&rev=${t.commit}`;
    return ['nix', 'eval', '--raw', `${ref}#nixosConfigurations."${t.host}".config.system.build.toplevel.outPath`];
  }
  const src = `builtins.fetchGit { url = ${JSON.stringify(url)}; ref = ${JSON.stringify(`refs/heads/${t.branch}`)}; rev = ${JSON.stringify(t.commit)}; }`;
  const expr = `(import <nixpkgs/nixos> { configuration = (${src}) + ${JSON.stringify(`/${t.build.file}`)}; }).system.outPath`;
  return ['nix-instantiate', '--eval', '--json', '--read-write-mode', '-E', expr];
}

/** The store path an evaluation printed (flake: raw; classic: a JSON string); null if it printed none. */
export function evaluatedPath(mode: Config['build']['mode'], stdout: string): string | null {
  const text = stdout.trim();
  if (mode === 'flake') return text.startsWith('/') && !text.includes('\n') ? text : null;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'string' ? value : null;
  } catch {
    return null;
  }
}
