/**
 * `systemctl`: restart the watcher after an outcome; read the executor's own unit for
 * self-upgrade; see whether an activation's transient unit still runs, and stop one.
 */
import type { Runner, RunResult } from '@pullnix/shared';

export function restartUnit(runner: Runner, unit: string, timeoutMs = 120_000): Promise<RunResult> {
  return runner(['systemctl', 'restart', '--', unit], { timeoutMs });
}

/** The unit's files as systemd has them loaded (after daemon-reload); null when it cannot be read. */
export async function catUnit(runner: Runner, unit: string, timeoutMs = 30_000): Promise<string | null> {
  const r = await runner(['systemctl', 'cat', '--', unit], { timeoutMs });
  return r.exitCode === 0 ? r.stdout : null;
}

/** ActiveState of a unit: active, activating, deactivating, inactive, failed (a unit systemd does not know is inactive). */
export async function activeState(runner: Runner, unit: string, timeoutMs = 30_000): Promise<string | null> {
  const r = await runner(['systemctl', 'show', '--property=ActiveState', '--value', '--', unit], { timeoutMs });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

export function stopUnit(runner: Runner, unit: string, timeoutMs = 120_000): Promise<RunResult> {
  return runner(['systemctl', 'stop', '--', unit], { timeoutMs });
}

/**
 * Units that are failed, or auto-restarting after a failure (what switch-to-configuration counts as
 * failed for its exit 4), sorted; null when systemctl cannot answer. A deployment records this set
 * before it starts, so that a unit failing afterwards is told apart from one that already failed.
 */
export async function failedUnits(runner: Runner, timeoutMs = 30_000): Promise<string[] | null> {
  const r = await runner(['systemctl', 'list-units', '--all', '--plain', '--no-legend', '--no-pager', '--state=failed,auto-restart'], { timeoutMs });
  if (r.exitCode !== 0) return null;
  const units = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const name = line.trim().split(/\s+/)[0];
    if (name) units.add(name);
  }
  return [...units].sort();
}

/** LoadState of a unit: loaded, not-found (its file is gone, though it may still run), ...; null when systemctl cannot answer. */
export async function loadState(runner: Runner, unit: string, timeoutMs = 30_000): Promise<string | null> {
  const r = await runner(['systemctl', 'show', '--property=LoadState', '--value', '--', unit], { timeoutMs });
  return r.exitCode === 0 ? r.stdout.trim() : null;
}

/** Queue stop jobs and return at once (the executor may be stopping itself). */
export function stopUnitsNoBlock(runner: Runner, units: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return runner(['systemctl', 'stop', '--no-block', '--', ...units], { timeoutMs });
}

/** Properties of a unit (`systemctl show --property=A,B`), as a map; null when systemctl cannot answer. */
export async function unitProperties(runner: Runner, unit: string, properties: readonly string[], timeoutMs = 30_000): Promise<Record<string, string> | null> {
  const r = await runner(['systemctl', 'show', `--property=${properties.join(',')}`, '--', unit], { timeoutMs });
  if (r.exitCode !== 0) return null;
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/**
 * `systemctl show --property=A,B -- <unit or pattern>...`: the properties of every unit named or
 * matched (a glob matches the units loaded in memory; `*`: all of them), by Id; null when systemctl
 * cannot answer. systemctl prints each property as `Name=value` (systemd
 * src/shared/bus-print-properties.c, bus_print_property_value: `printf("%s=%s\n", name, ...)`),
 * a property asked for by name even when empty (`InvocationID=` of a unit that never ran), the
 * units one after the other with a blank line between them, Id anywhere in its block (as systemd
 * 252 prints them in the test bed's containers).
 */
export async function showUnits(runner: Runner, units: readonly string[], properties: readonly string[], timeoutMs = 30_000): Promise<Map<string, Record<string, string>> | null> {
  const r = await runner(['systemctl', 'show', `--property=${['Id', ...properties].join(',')}`, '--', ...units], { timeoutMs });
  if (r.exitCode !== 0) return null;
  const out = new Map<string, Record<string, string>>();
  for (const block of r.stdout.split(/\n\s*\n/)) {
    const props: Record<string, string> = {};
    for (const line of block.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) props[line.slice(0, i)] = line.slice(i + 1);
    }
    if (props.Id) out.set(props.Id, props);
  }
  return out;
}

/** systemd's time units, as format_timespan writes them (src/basic/time-util.c, format_timespan_full's table), in ms. */
const TIMESPAN_MS: Record<string, number> = { y: 31_557_600_000, month: 2_629_800_000, w: 604_800_000, d: 86_400_000, h: 3_600_000, min: 60_000, s: 1000, ms: 1, us: 0.001 };

/**
 * A `...USec` property as `systemctl show` prints it, in ms: systemctl formats every uint64 whose
 * name contains "USec" with FORMAT_TIMESPAN(u, 0) (bus-print-properties.c, bus_print_property,
 * case SD_BUS_TYPE_UINT64), e.g. `100ms`, `1min 30s`, `2.500000s` (dot notation below a minute),
 * `0`, `infinity` (USEC_INFINITY). null: not a timespan systemd writes.
 */
export function parseTimespanMs(text: string | undefined): number | null {
  if (text === undefined) return null;
  const t = text.trim();
  if (t === 'infinity') return Infinity;
  if (t === '0') return 0;
  let ms = 0;
  let rest = t;
  for (;;) {
    const m = /^(\d+(?:\.\d+)?)(y|month|w|d|h|min|ms|us|s)(?:\s+|$)/.exec(rest);
    if (!m) return null;
    ms += Number(m[1]) * TIMESPAN_MS[m[2]!]!;
    rest = rest.slice(m[0].length);
    if (rest === '') return ms;
  }
}

/** `systemctl reboot`: the machine shuts down cleanly (this executor with it) and boots again. */
export function reboot(runner: Runner, timeoutMs = 60_000): Promise<RunResult> {
  return runner(['systemctl', 'reboot'], { timeoutMs });
}

/**
 * `systemctl is-system-running --wait`: waits until the boot has finished (no job queued: running,
 * degraded, maintenance), bounded by `timeoutMs`; the state it reached, or null (timed out, no answer).
 */
export async function waitForBoot(runner: Runner, timeoutMs: number): Promise<string | null> {
  const r = await runner(['systemctl', 'is-system-running', '--wait'], { timeoutMs });
  const state = r.stdout.trim();
  return r.timedOut || state === '' ? null : state;
}
