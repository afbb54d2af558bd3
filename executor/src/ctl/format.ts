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
export function table(header: readonly string[], rows: readonly (readonly string[])[], style: Style, width?: number): string {
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
  return rows.map(([label, value]) => `${label.padEnd(w)}  ${value}`.trimEnd()).join('\n');
}

export function firstLine(text: string, max = 200): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export function quoted(text: string | null | undefined): string {
  return text ? JSON.stringify(firstLine(text, 72)) : '';
}
