/**
 * Logs for the journal: winston to stdout, each line `<N>event key=value ...` where <N> is the
 * syslog priority journald stores (SyslogLevelPrefix), the event name comes from the catalogue
 * and its priority too, so a given event always lands at the same priority.
 */
import { createRequire } from 'node:module';
import type winstonTypes from 'winston';

import { EVENTS, type EventName, type Priority } from './events.ts';

// Required as CommonJS, not imported as an ES module: an import makes Node scan winston and its
// dependencies with the CommonJS export lexer, which V8 then optimises, megabytes a daemon keeps
// for its whole life (docs/decisions.md D16). Required when the first logger is made, not when this
// module loads: pullnix-ctl, which imports the package but logs nothing, never loads its ~85 modules.
let winstonModule: typeof winstonTypes | undefined;
function loadWinston(): typeof winstonTypes {
  winstonModule ??= createRequire(import.meta.url)('winston') as typeof winstonTypes;
  return winstonModule;
}

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
  const winston = loadWinston();
  const transport = options.stream
    ? new winston.transports.Stream({ stream: options.stream })
    : new winston.transports.Console({ forceConsole: true } as winstonTypes.transports.ConsoleTransportOptions);
  const w = winston.createLogger({
    levels: LEVELS,
    level,
    format: winston.format.printf((info) => String(info.message)),
    transports: [transport],
  });
  return wrap(w, level, {});
}

function wrap(w: winstonTypes.Logger, level: Priority, base: Fields): Logger {
  return {
    level,
    event(name, fields = {}) {
      const priority = EVENTS[name].priority;
      w.log(priority, formatLine(name, { ...base, ...fields }));
    },
    child(fields) {
      return wrap(w, level, { ...base, ...fields });
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
