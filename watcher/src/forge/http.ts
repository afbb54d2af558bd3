/**
 * One HTTP exchange with node:http / node:https. Not Node's global fetch: it is undici, whose HTTP
 * parser is WebAssembly (llhttp), and the watcher runs with `--lite-mode --no-expose-wasm`
 * (nixos/node-flags.json), under which fetch throws "WebAssembly is not defined" out of its
 * own lazy loading and takes the process down. node:http parses with the built-in llhttp.
 *
 * node:http is loaded with require, lazily: an ESM `import … from 'node:http'` builds the module's
 * ESM facade, which reads every export, `http.WebSocket` included, a getter that loads undici —
 * the same crash at the watcher's start (Node 22, lib/http.js lazyUndici).
 */
import { createRequire } from 'node:module';
import type { IncomingHttpHeaders } from 'node:http';

const require = createRequire(import.meta.url);

export interface HttpRequest {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body: string | null;
  signal: AbortSignal;
}

export interface HttpAnswer {
  status: number;
  statusText: string;
  header(name: string): string | null;
  text: string;
}

export type Transport = (url: string, request: HttpRequest) => Promise<HttpAnswer>;

/** A forge's answer is small (a status, a page of 100): more than this is refused, not buffered. */
const MAX_BODY = 8 * 1024 * 1024;

export const nodeTransport: Transport = (url, req) =>
  new Promise<HttpAnswer>((resolve, reject) => {
    const u = new URL(url);
    const send =
      u.protocol === 'https:'
        ? (require('node:https') as typeof import('node:https')).request
        : u.protocol === 'http:'
          ? (require('node:http') as typeof import('node:http')).request
          : null;
    if (!send) return reject(new Error(`unsupported scheme ${u.protocol}`));
    const headers: Record<string, string | number> = { ...req.headers };
    if (req.body !== null) headers['content-length'] = Buffer.byteLength(req.body);
    const r = send(u, { method: req.method, headers, signal: req.signal }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) res.destroy(new Error(`the answer is larger than ${MAX_BODY} bytes`));
        else chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', header: (name) => headerOf(res.headers, name), text: Buffer.concat(chunks).toString('utf8') }));
    });
    r.on('error', reject);
    r.end(req.body ?? undefined);
  });

function headerOf(headers: IncomingHttpHeaders, name: string): string | null {
  const v = headers[name.toLowerCase()];
  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
}
