/** The one table `npm run bench` prints: figure, baseline, ratio, goal, met. */
export interface Row {
  group: string;
  name: string;
  figure: number;
  baseline: number | null;
  unit: string;
  /** The goal, as a predicate over figure and ratio, with its text. */
  goal: { text: string; met: boolean } | null;
  note?: string;
}

export function ratio(row: Row): number | null {
  return row.baseline && row.baseline > 0 ? row.figure / row.baseline : null;
}

function fmt(n: number | null, unit = ''): string {
  if (n === null) return '-';
  const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2;
  return `${n.toFixed(digits)}${unit ? ` ${unit}` : ''}`;
}

export function renderTable(rows: readonly Row[]): string {
  const header = ['benchmark', 'figure', 'baseline', 'ratio', 'goal', 'met'];
  const body = rows.map((r) => {
    const q = ratio(r);
    return [
      `${r.group}: ${r.name}`,
      fmt(r.figure, r.unit),
      r.baseline === null ? '-' : fmt(r.baseline, r.unit),
      q === null ? '-' : `${q.toFixed(2)}x`,
      r.goal?.text ?? '-',
      r.goal === null ? '-' : r.goal.met ? 'yes' : 'NO',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}
