/**
 * Logs for the journal: one line per event on stdout, `<N>event key=value ...` where <N> is the
 * syslog priority journald stores (SyslogLevelPrefix), the event name comes from the catalogue
 * and its priority too, so a given event always lands at the same priority.
 *
 * The line is written here, with console.log (as winston's Console transport did, so a closed
 * stdout is ignored rather than fatal) or the given stream's write(). winston used to carry it:
 * a stream pipeline, ~70 modules and ~4 MiB of resident memory in each daemon, for a formatted
 * line and a level threshold (docs/decisions.md; docs/benchmarks.md, the idle machine).
 */
import { EVENTS, type EventName, type Priority } from './events.ts';

export type Fields = Record<string, string | number | boolean | null | undefined | readonly string[]>;

const SYSLOG: Record<Priority, number> = { error: 3, warning: 4, info: 6, debug: 7 };
const LEVELS: Record<Priority, number> = { error: 0, warning: 1, info: 2, debug: 3 };

export interface Logger {
  event(name: EventName, fields?: Fields): void;
  child(fields: Fields): Logger;
  readonly level: Priority;
}

export interface LoggerOptions {
  level?: Priority;
  /** Where lines go; defaults to stdout (journald reads the <N> prefix). */
  stream?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const stream = options.stream;
  const write = stream ? (line: string) => void stream.write(`${line}\n`) : (line: string) => console.log(line);
  return wrap(write, level, {});
}

function wrap(write: (line: string) => void, level: Priority, base: Fields): Logger {
  const threshold = LEVELS[level];
  return {
    level,
    event(name, fields = {}) {
      const priority = EVENTS[name].priority;
      // Formatted only when written: a filtered debug event costs no string building.
      if (LEVELS[priority] <= threshold) write(formatLine(name, { ...base, ...fields }));
    },
    child(fields) {
      return wrap(write, level, { ...base, ...fields });
    },
  };
}

/** `<N>event k=v ...` — values quoted with JSON string syntax when they hold spaces, quotes or `=`. */
export function formatLine(name: EventName, fields: Fields): string {
  const parts = [`<${SYSLOG[EVENTS[name].priority]}>${name}`];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(`${key}=${formatValue(value)}`);
  }
  return parts.join(' ');
}

function formatValue(value: Exclude<Fields[string], undefined>): string {
  if (value === null) return '-';
  if (Array.isArray(value)) return formatValue(value.join(','));
  const text = String(value);
  if (text === '' || /[\s"=\\]/.test(text) || /[\u0000-\u001f]/.test(text)) return JSON.stringify(text.length > 2000 ? `${text.slice(0, 2000)}…` : text);
  return text;
}

/** Parse a line back (tests, pullnix-ctl logs): `{priority, event, fields}` or null. */
export function parseLine(line: string): { priority: number | null; event: string; fields: Record<string, string> } | null {
  const m = /^(?:<(\d)>)?([a-z_]+\.[a-z_]+)((?: [A-Za-z_][A-Za-z0-9_]*=(?:"(?:[^"\\]|\\.)*"|\S*))*)\s*$/.exec(line);
  if (!m) return null;
  const fields: Record<string, string> = {};
  const re = / ([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  for (const f of m[3]!.matchAll(re)) fields[f[1]!] = f[2]!.startsWith('"') ? (JSON.parse(f[2]!) as string) : f[2]!;
  return { priority: m[1] === undefined ? null : Number(m[1]), event: m[2]!, fields };
}
