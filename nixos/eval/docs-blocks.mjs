// Extracts every ```nix block of README.md and docs/*.md that configures pullnix (mentions
// `pullnix`) into its own Nix file for nixos/eval/docs.nix, and prints the list as JSON:
//   [{ "name": "docs/nixos.md:16", "file": ".../block-1/block.nix", "kind": "flake"|"module"|"fragment",
//      "mustFail": "<message>" | null }]
// A block that is meant to fail says so in a comment inside it:
//   # pullnix-docs: must fail: <the message the evaluation error must contain>
// Each file is `{ builtins }: <block>` (docs.nix passes builtins with a fetchTarball that gives
// this tree); a fragment (bindings, not an expression)
// is wrapped in `{ }`. Relative paths a flake names (./hosts/edge-01/configuration.nix) are
// written as empty modules beside it.
//   node nixos/eval/docs-blocks.mjs OUT_DIR     (from the repository root)
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const MUST_FAIL = /#\s*pullnix-docs:\s*must fail:\s*(.+?)\s*$/m;

/** The ```nix blocks of a markdown text: { line (1-based, of the fence), text }. */
export function nixBlocks(markdown) {
  const blocks = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```nix') continue;
    const start = i;
    const body = [];
    for (i++; i < lines.length && lines[i].trim() !== '```'; i++) body.push(lines[i]);
    blocks.push({ line: start + 1, text: body.join('\n') });
  }
  return blocks;
}

/** flake (has inputs and outputs), module (an expression: `{`), or fragment (bindings). */
export function kindOf(text) {
  const code = text.replace(/#.*$/gm, '').trim();
  if (/^\{/.test(code) && /\boutputs\s*=/.test(code) && /\binputs\s*=/.test(code)) return 'flake';
  return /^(\{|\()/.test(code) ? 'module' : 'fragment';
}

export function docFiles(root) {
  return ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2];
  if (!out) throw new Error('usage: docs-blocks.mjs OUT_DIR');
  const list = [];
  for (const doc of docFiles(process.cwd())) {
    for (const b of nixBlocks(readFileSync(doc, 'utf8'))) {
      if (!/pullnix/.test(b.text)) continue;
      const kind = kindOf(b.text);
      const dir = join(out, `block-${list.length + 1}`);
      mkdirSync(dir, { recursive: true });
      const body = kind === 'fragment' ? `{\n${b.text}\n}` : b.text;
      const file = join(dir, 'block.nix');
      writeFileSync(file, `{ builtins }:\n${body}\n`);
      for (const m of b.text.matchAll(/(?<![\w/"])\.\/([\w./-]+\.nix)\b/g)) {
        const p = join(dir, m[1]);
        if (existsSync(p)) continue;
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, '# stands in for a file of the user\'s repository\n{ }\n');
      }
      list.push({ name: `${doc}:${b.line}`, file, kind, mustFail: MUST_FAIL.exec(b.text)?.[1] ?? null });
    }
  }
  process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
}
