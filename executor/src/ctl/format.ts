/**
 * Terminal output helpers: colour (only on a TTY, never with NO_COLOR), relative times, aligned
 * columns. Pure functions of their inputs, so render tests need no terminal.
 */

export interface Style {
  readonly enabled: boolean;
  red(text: string): string;
  yellow(text: string): string;
  green(text: string): string;
  bold(text: string): string;
  dim(text: string): string;
}

/** https://no-color.org: NO_COLOR present and not empty disables colour, whatever the terminal. */
export function colourWanted(isTTY: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return isTTY === true;
}

export function makeStyle(enabled: boolean): Style {
  const sgr = (open: number, close: number) => (text: string) => (enabled && text !== '' ? `\u001b[${open}m${text}\u001b[${close}m` : text);
  return { enabled, red: sgr(31, 39), yellow: sgr(33, 39), green: sgr(32, 39), bold: sgr(1, 22), dim: sgr(2, 22) };
}

const ANSI = /\u001b\[[0-9;]*m/g;
const ANSI_TEST = /\u001b\[/;

export function visibleLength(text: string): number {
  return text.replace(ANSI, '').length;
}

/** "just now", "42 s ago", "3 min ago", "5 h ago", "2 days ago", "in 4 min"; a date past 30 days. */
export function relativeTime(iso: string | null | undefined, now: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const seconds = Math.round((now - t) / 1000);
  const future = seconds < 0;
  const s = Math.abs(seconds);
  if (s < 5) return future ? 'now' : 'just now';
  let amount: string;
  if (s < 60) amount = `${s} s`;
  else if (s < 3600) amount = `${Math.floor(s / 60)} min`;
  else if (s < 48 * 3600) amount = `${Math.floor(s / 3600)} h`;
  else if (s < 30 * 86400) amount = `${Math.floor(s / 86400)} days`;
  else return new Date(t).toISOString().slice(0, 10);
  return future ? `in ${amount}` : `${amount} ago`;
}

/** "3 h 12 min", for uptimes. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} days`;
}

/**
 * Left-aligned columns separated by two spaces; the last column is not padded, and is cut to
 * `width` (when given) so a long reason does not wrap the table on a terminal.
 */
export function table(header: readonly string[], given: readonly (readonly string[])[], style: Style, width?: number): string {
  const rows = given.map((r) => r.map((cell) => cell.replace(/\n/g, '\\n')));
  const widths = header.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: readonly string[]) => {
    let out = '';
    cells.forEach((cell, i) => {
      if (i < cells.length - 1) {
        out += cell + ' '.repeat(widths[i]! - visibleLength(cell) + 2);
        return;
      }
      const room = width === undefined ? Infinity : Math.max(width - visibleLength(out), 12);
      out += cell.length > room && !ANSI_TEST.test(cell) ? `${cell.slice(0, room - 1)}…` : cell;
    });
    return out.trimEnd();
  };
  return [style.bold(line(header)), ...rows.map(line)].join('\n');
}

/** Label/value lines with the labels padded to one width; continuation lines (label '') indent. */
export function fields(rows: readonly (readonly [string, string])[]): string {
  const w = Math.max(...rows.map(([label]) => label.length));
  // A line break inside a value (a name or reason from git or the network) would forge a line.
  return rows.map(([label, value]) => `${label.padEnd(w)}  ${value.replace(/\n/g, '\\n')}`.trimEnd()).join('\n');
}

/**
 * C0 controls but the line feed (which `firstLine` and `fields` handle), DEL, C1 controls (0x9b is
 * a CSI on 8-bit terminals) and the bidirectional overrides that reorder what a terminal shows.
 */
const UNPRINTABLE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * A string from git or the network made safe to print on a terminal: every control character
 * becomes a visible escape (`\x1b`, `\u202e`), so a commit subject or an error cannot move the
 * cursor, retitle the terminal or hide text.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** `printable` applied to every string in an answer, before any of it is rendered. */
export function printableDeep<T>(value: T): T {
  if (typeof value === 'string') return printable(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => printableDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, printableDeep(v)])) as T;
  }
  return value;
}

export function firstLine(text: string, max = 200): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A subject or a reason in double quotes, its first line, control characters escaped. */
export function quoted(text: string | null | undefined): string {
  return text ? `"${printable(firstLine(text, 72))}"` : '';
}
