/**
 * `nix path-info --store <cache> --json -r <toplevel>`: what a binary cache says of a closure,
 * asked of the cache itself (the watcher's own client, over HTTP or from the directory), before
 * anything is downloaded. The JSON is Nix's `Store::pathInfoToJSON` (NixOS/nix 2.8.1,
 * src/libstore/store-api.cc l. 764-834): per path `path`, `narSize` (the unpacked size),
 * `references`, `signatures` (`<key name>:<base64>`), and for a binary cache's narinfo `url`,
 * `downloadHash`, `downloadSize` (the compressed file); `-S` adds `closureSize` and
 * `closureDownloadSize` (l. 791-827, the sums over the closure: getClosureSize, l. 838). A path
 * the cache does not have: `nix path-info -r` exits 1 with "path '…' is not valid" (the closure
 * cannot be computed; checked with Nix 2.8), without -r it prints `{"path": …, "valid": false}`
 * (l. 830-832).
 *
 * `narinfo-cache-negative-ttl 0`: a miss is not remembered in the watcher's own narinfo cache
 * ($XDG_CACHE_HOME/nix/binary-cache-v6.sqlite, nar-info-disk-cache.cc l. 88), so a manifest
 * pushed before the cache has its paths is seen at the next poll, not an hour later.
 */
import { describeFailure, lastLines, type Runner } from '@pullnix/shared';

export interface CachePath {
  path: string;
  narSize: number;
  downloadSize: number;
  signatures: string[];
  /** Content-addressed (the narinfo's CA): Nix takes it without a signature. */
  ca: boolean;
}

export type CacheClosure =
  | { ok: true; paths: CachePath[] }
  /** missing: the cache does not have the toplevel or a path of its closure (yet). */
  | { ok: false; missing: true; error: string }
  | { ok: false; missing: false; error: string; stderr: string };

export function pathInfoArgv(cache: string, toplevel: string): string[] {
  return ['nix', '--extra-experimental-features', 'nix-command', 'path-info', '--store', cache, '--option', 'narinfo-cache-negative-ttl', '0', '--json', '-r', toplevel];
}

export async function cacheClosure(runner: Runner, cache: string, toplevel: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<CacheClosure> {
  const r = await runner(pathInfoArgv(cache, toplevel), { timeoutMs: options.timeoutMs, killAfterMs: 5000, maxOutputBytes: 256 * 1024 * 1024, ...(options.signal ? { signal: options.signal } : {}) });
  if (r.exitCode !== 0) {
    const missing = /path '[^']*' is not valid/.exec(r.stderr);
    if (missing && !r.timedOut) return { ok: false, missing: true, error: `${cache} does not have ${missing[0].replace(/^path /, '').replace(/ is not valid$/, '')} yet` };
    return { ok: false, missing: false, error: `${describeFailure(r)}`, stderr: lastLines(r.stderr, 10) };
  }
  let data: unknown;
  try {
    data = JSON.parse(r.stdout);
  } catch (cause) {
    return { ok: false, missing: false, error: `nix path-info printed no JSON (${(cause as Error).message})`, stderr: lastLines(r.stderr, 10) };
  }
  if (!Array.isArray(data)) return { ok: false, missing: false, error: 'nix path-info printed no JSON list', stderr: '' };
  const paths: CachePath[] = [];
  for (const entry of data as Record<string, unknown>[]) {
    if (entry.valid === false) return { ok: false, missing: true, error: `${cache} does not have '${String(entry.path)}' yet` };
    paths.push({
      path: String(entry.path),
      narSize: typeof entry.narSize === 'number' ? entry.narSize : 0,
      downloadSize: typeof entry.downloadSize === 'number' ? entry.downloadSize : typeof entry.narSize === 'number' ? entry.narSize : 0,
      signatures: Array.isArray(entry.signatures) ? entry.signatures.map(String) : [],
      ca: typeof entry.ca === 'string',
    });
  }
  return { ok: true, paths };
}
