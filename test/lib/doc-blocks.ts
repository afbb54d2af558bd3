/**
 * The fenced blocks of the documentation that tests run or regenerate:
 *   - `<!-- first-hour: NAME [as USER] [(note)] -->` before a ```sh block of docs/nixos.md: a step
 *     of the first-hour walkthrough, run verbatim by test/system/16-first-hour.test.ts;
 *   - `<!-- bed-example: SITUATION -->` before a ```console block (docs/cli.md, README.md): example
 *     `pullnix-ctl` output, regenerated from a run on the bed (PULLNIX_DOCS_REWRITE=1) and compared,
 *     normalised, otherwise.
 */

export interface MarkedBlock {
  /** The marker's words: name, then the rest. */
  marker: string;
  lang: string;
  /** 0-based index of the first line of the block's content, and the number of content lines. */
  start: number;
  length: number;
  /** The fence's indentation (a block inside a list item), removed from `text`. */
  indent: string;
  text: string;
}

/** Blocks preceded (directly, or with one blank line) by `<!-- KIND: ... -->`. */
export function markedBlocks(markdown: string, kind: string): MarkedBlock[] {
  const lines = markdown.split('\n');
  const out: MarkedBlock[] = [];
  const re = new RegExp(`^<!--\\s*${kind}:\\s*(.+?)\\s*-->$`);
  for (let i = 0; i < lines.length; i++) {
    const m = re.exec(lines[i]!.trim());
    if (!m) continue;
    let j = i + 1;
    if (lines[j]?.trim() === '') j++;
    const fence = /^```(\w*)$/.exec(lines[j]?.trim() ?? '');
    if (!fence) throw new Error(`line ${i + 1}: the marker <!-- ${kind}: ${m[1]} --> is not followed by a fenced block`);
    let k = j + 1;
    while (k < lines.length && lines[k]!.trim() !== '```') k++;
    if (k === lines.length) throw new Error(`line ${j + 1}: unterminated fenced block`);
    const indent = /^\s*/.exec(lines[j]!)![0];
    const text = lines.slice(j + 1, k).map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l.trimStart())).join('\n');
    out.push({ marker: m[1]!, lang: fence[1]!, start: j + 1, length: k - j - 1, indent, text });
    i = k;
  }
  return out;
}

export interface FirstHourStep {
  name: string;
  /** The user the step runs as (root when the marker names none). */
  user: string;
  /** The marker says the bed stands in for this step (it is not run). */
  standIn: boolean;
  script: string;
}

export function firstHourSteps(markdown: string): FirstHourStep[] {
  return markedBlocks(markdown, 'first-hour').map((b) => {
    const m = /^([\w-]+)(?:\s+as\s+([a-z_][a-z0-9_-]*))?(?:\s+\((.*)\))?$/.exec(b.marker);
    if (!m) throw new Error(`first-hour marker "${b.marker}": expected NAME [as USER] [(note)]`);
    if (b.lang !== 'sh') throw new Error(`first-hour step ${m[1]}: a \`\`\`sh block expected, got \`\`\`${b.lang}`);
    return { name: m[1]!, user: m[2] ?? 'root', standIn: /stands in/.test(m[3] ?? ''), script: b.text };
  });
}

/** One `$ command` of a console example and the output printed under it. */
export interface ConsoleCommand {
  /** The command line without `$ ` and without its trailing `# comment`. */
  command: string;
  /** The trailing comment (the situation it runs in), or ''. */
  comment: string;
  output: string[];
}

export function parseConsole(text: string): ConsoleCommand[] {
  const out: ConsoleCommand[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('$ ')) {
      const m = /^\$ (.*?)(?:\s+#\s*(.*))?$/.exec(line)!;
      out.push({ command: m[1]!.trim(), comment: (m[2] ?? '').trim(), output: [] });
    } else if (out.length > 0) {
      out[out.length - 1]!.output.push(line);
    } else {
      throw new Error(`console block: output before any "$ " command: ${line}`);
    }
  }
  return out;
}

/** The console block again, from commands and outputs (the inverse of parseConsole). */
export function renderConsole(commands: readonly ConsoleCommand[], original: readonly ConsoleCommand[]): string {
  return commands
    .map((c, i) => {
      const raw = original[i];
      const head = raw && raw.comment ? `$ ${c.command}`.padEnd(Math.max(`$ ${c.command}`.length + 1, 28)) + `# ${raw.comment}` : `$ ${c.command}`;
      return [head, ...c.output].join('\n');
    })
    .join('\n');
}

/**
 * What legitimately differs between two runs, made equal: relative times and durations, commit
 * hashes (8 or 40 hex digits), store path hashes, pids, host names of the bed's machines, ISO
 * timestamps, freshly made public keys, how a failed-units check ended; then runs of spaces (column widths follow the values).
 */
export function normaliseOutput(text: string): string {
  return text
    .replace(/\/nix\/store\/[0-9a-z]{32}-/g, '/nix/store/<hash>-')
    .replace(/\b[0-9a-f]{40}\b/g, '<commit>')
    .replace(/\b[0-9a-f]{8}\b/g, '<commit>')
    .replace(/\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\b/g, '<time>')
    .replace(/\b\d+(\.\d+)? (ms|s|min|h|days?)( \d+ (s|min|h))?\b/g, '<duration>')
    // relative moments: "just now", "now", "in 4 s", "3 min ago" (the bed's poll every 2 s makes them flicker)
    .replace(/(?<!\w)(just now|in <duration>|<duration> ago|now)(?!\w)/g, '<when>')
    // how a failed-units check ended depends on when the crash loop was last seen: still failing at
    // the last look, or running again for less than its settle window at the deadline
    .replace(/(units failed after activation \(not before it\): [\w@.,\- ]+?)((;| \()[^\n]*)?$/gm, '$1 <how the check ended>')
    // the watcher between two polls (idle, with its next poll) or in one (polling): the bed polls
    // every 2 s, so which one a status catches is timing; any other state is part of the example
    .replace(/^(watcher\s+connected, )(idle|polling)\b/gm, '$1<idle or polling>')
    .replace(/^(\s+last poll <when>), next poll <when>$/gm, '$1')
    .replace(/\bpid \d+/g, 'pid <n>')
    .replace(/\bpnx-[\w-]+-\d+\b/g, '<machine>')
    .replace(/\bed25519:[A-Za-z0-9_-]{43}\b/g, 'ed25519:<public key>')
    .replace(/[ \t]+/g, ' ')
    .replace(/ +$/gm, '')
    .trim();
}
