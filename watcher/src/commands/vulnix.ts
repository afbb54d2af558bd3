/**
 * The `vulnix` command (github:nix-community/vulnix, the Nix(OS) vulnerability scanner against
 * the NIST NVD): argv, and reading its answer. What it prints and how it exits is taken from its
 * source, release 1.12.3:
 *
 * - `src/vulnix/main.py`: `PATH` arguments (click.Path(exists=True): a missing path is a click
 *   usage error, exit 2); `-C/--closure` "examine the closure of an output path (runtime
 *   dependencies)", i.e. what the machine will run, not the build-time closure of the
 *   derivation; `-c/--cache-dir` (default `~/.cache/vulnix`, the NVD database); `-j/--json`. A
 *   `RuntimeError` (a path whose deriver cannot be found, …) is logged and exits 2 with nothing
 *   on stdout; any other exception (an unreachable NVD mirror raises requests' ConnectionError)
 *   is an uncaught Python exception: a traceback, exit 1. No target at all: exit 3.
 * - `src/vulnix/output.py`, `output()`: exit 0 when nothing is reported, 2 when some derivation
 *   has a reported (not whitelisted) CVE, 1 only with `--show-whitelisted` when everything shown
 *   is whitelisted. `output_json()`: a JSON list, one object per affected derivation, keys
 *   `name`, `pname`, `version`, `derivation`, `affected_by` (reported CVE ids), `whitelisted`,
 *   `cvssv3_basescore` (CVE id → CVSS v3 base score, only for CVEs that have one) and
 *   `description` (CVE id → text).
 *
 * Exit 2 therefore means either "vulnerabilities found" or "failed": only a well-formed JSON list
 * on stdout whose exit code agrees with its content (2 ⇔ something in `affected_by`) is a
 * result; everything else is a failed scan. But a scan that ran (exit 0, or exit 2 with a report
 * begun on stdout) and whose report cannot be read is not a failed scan: its report may list
 * what the gate is there to stop, so it is `unreadable`, refused (never let through by
 * `onError = allow`). The report is read whole from a file (vulnerabilities.ts), never cut.
 */
import { describeFailure, lastLines, type RunResult } from '@pullnix/shared';
import type { VulnerabilityFinding } from '@pullnix/shared';

const CVE = /^CVE-\d{4}-\d{4,}$/;

export interface VulnixSettings {
  command: string;
  extraFlags: readonly string[];
}

/** `vulnix --json --closure --cache-dir <cacheDir> <extraFlags…> <storePath>`. */
export function vulnixArgv(settings: VulnixSettings, cacheDir: string, storePath: string): string[] {
  return [settings.command, '--json', '--closure', '--cache-dir', cacheDir, ...settings.extraFlags, '--', storePath];
}

/** `unreadable`: the scan ran but its report cannot be read (refused, not an error). */
export type VulnixAnswer = { ok: true; findings: VulnerabilityFinding[] } | { ok: false; error: string; unreadable?: true };

/** One vulnix run's result → the findings (one per package and CVE), or why it is not a result. */
export function readVulnixResult(result: RunResult): VulnixAnswer {
  const name = result.argv[0] ?? 'vulnix';
  if (result.spawnError || result.timedOut || result.aborted || result.signal) return { ok: false, error: describeFailure(result) };
  if (result.exitCode !== 0 && result.exitCode !== 1 && result.exitCode !== 2) return { ok: false, error: describeFailure(result) };
  // output_json() prints its list and nothing else, and only after the scan ran.
  const scanned = result.exitCode === 0 || (result.exitCode === 2 && result.stdout.trim() !== '');
  let data: unknown;
  try {
    data = JSON.parse(result.stdout);
  } catch (error) {
    if (scanned) return { ok: false, unreadable: true, error: `${name} exited ${result.exitCode} after a scan, but its report (${Buffer.byteLength(result.stdout)} bytes) is not JSON: ${(error as Error).message}` };
    // exit 2 with a log on stderr (a RuntimeError), exit 1 with a traceback: their last line is the exception.
    const detail = lastLines(result.stderr, 1) || lastLines(result.stdout, 1);
    return { ok: false, error: `${name} exited ${result.exitCode} without a JSON report${detail ? `: ${detail}` : ''}` };
  }
  const parsed = parseVulnixJson(data);
  if (typeof parsed === 'string') {
    const error = `${name} exited ${result.exitCode} with an unexpected JSON report: ${parsed}`;
    return scanned ? { ok: false, unreadable: true, error } : { ok: false, error };
  }
  const reported = parsed.length > 0;
  if (reported !== (result.exitCode === 2)) {
    return { ok: false, error: `${name} exited ${result.exitCode} but its report lists ${parsed.length} vulnerabilit${parsed.length === 1 ? 'y' : 'ies'} (exit 2 means some were found)` };
  }
  return { ok: true, findings: parsed };
}

/** vulnix's JSON list → findings, or a string naming what is wrong with it. */
export function parseVulnixJson(data: unknown): VulnerabilityFinding[] | string {
  if (!Array.isArray(data)) return 'not a list';
  const findings = new Map<string, VulnerabilityFinding>();
  for (const [index, item] of data.entries()) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return `item ${index} is not an object`;
    const entry = item as Record<string, unknown>;
    const pname = entry.pname;
    if (typeof pname !== 'string' || pname === '') return `item ${index} has no pname`;
    const version = typeof entry.version === 'string' ? entry.version.slice(0, 256) : null;
    const affected = entry.affected_by;
    if (!Array.isArray(affected) || !affected.every((c) => typeof c === 'string' && CVE.test(c))) return `item ${index} (${pname}): affected_by is not a list of CVE ids`;
    const scores = entry.cvssv3_basescore ?? {};
    if (typeof scores !== 'object' || scores === null || Array.isArray(scores)) return `item ${index} (${pname}): cvssv3_basescore is not an object`;
    for (const id of affected as string[]) {
      const raw = (scores as Record<string, unknown>)[id];
      const score = typeof raw === 'number' && raw >= 0 && raw <= 10 ? raw : null;
      const key = `${pname}\0${id}`;
      const seen = findings.get(key);
      // The same package in two versions: keep the worst-scored sighting.
      if (!seen || (score ?? -1) > (seen.score ?? -1)) findings.set(key, { id, package: pname.slice(0, 256), version, score });
    }
  }
  return [...findings.values()];
}
