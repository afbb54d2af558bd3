/**
 * A real web server for the prebuilt tests (issue 23): Debian's nginx-light, run by the test on a
 * loopback port with a configuration of its own (no system service touched), serving
 *   /cache/  a binary cache directory (what `nix copy --to file://DIR` wrote), as static files;
 *   /git/    git repositories over smart HTTP, through git-http-backend behind fcgiwrap, the way
 *            git's own documentation sets it up (git-http-backend(1): GIT_PROJECT_ROOT,
 *            GIT_HTTP_EXPORT_ALL, PATH_INFO; fcgiwrap runs the SCRIPT_FILENAME it is given).
 * stop() ends both processes it started (by their pids).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX = '/usr/sbin/nginx';
export const FCGIWRAP = '/usr/sbin/fcgiwrap';
export const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

/** Why nginx cannot be used here, or null. */
export function nginxUnavailable(): string | null {
  for (const f of [NGINX, FCGIWRAP, GIT_HTTP_BACKEND]) if (!existsSync(f)) return `${f} is missing (apt-get install -y nginx-light fcgiwrap git)`;
  return null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class Nginx {
  readonly dir: string;
  port = 0;
  private nginx: ChildProcess | null = null;
  private fcgi: ChildProcess | null = null;
  private readonly cacheDir: string;
  private readonly gitRoot: string;

  constructor(options: { cacheDir: string; gitRoot: string }) {
    this.dir = mkdtempSync(join(tmpdir(), 'pullnix-nginx-'));
    this.cacheDir = options.cacheDir;
    this.gitRoot = options.gitRoot;
  }

  get cacheUrl(): string {
    return `http://127.0.0.1:${this.port}/cache`;
  }

  gitUrl(repo: string): string {
    return `http://127.0.0.1:${this.port}/git/${repo}`;
  }

  async start(): Promise<void> {
    const socket = join(this.dir, 'fcgiwrap.sock');
    if (this.fcgi === null) {
      this.fcgi = spawn(FCGIWRAP, ['-s', `unix:${socket}`], { stdio: 'ignore' });
      await waitFor('fcgiwrap', () => existsSync(socket));
    }
    this.port ||= await freePort();
    mkdirSync(join(this.dir, 'logs'), { recursive: true });
    writeFileSync(
      join(this.dir, 'nginx.conf'),
      `daemon off;
master_process off;
pid ${join(this.dir, 'nginx.pid')};
error_log ${join(this.dir, 'logs', 'error.log')};
events { worker_connections 64; }
http {
  access_log ${join(this.dir, 'logs', 'access.log')};
  client_body_temp_path ${join(this.dir, 'body')};
  fastcgi_temp_path ${join(this.dir, 'fastcgi')};
  proxy_temp_path ${join(this.dir, 'proxy')};
  uwsgi_temp_path ${join(this.dir, 'uwsgi')};
  scgi_temp_path ${join(this.dir, 'scgi')};
  types { text/x-nix-narinfo narinfo; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${this.port};
    location /cache/ { alias ${this.cacheDir}/; }
    location ~ ^/git(/.*)$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME ${GIT_HTTP_BACKEND};
      fastcgi_param GIT_PROJECT_ROOT ${this.gitRoot};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $1;
      fastcgi_pass unix:${socket};
    }
  }
}
`,
    );
    this.nginx = spawn(NGINX, ['-p', this.dir, '-c', join(this.dir, 'nginx.conf')], { stdio: 'ignore' });
    await waitFor('nginx', async () => {
      try {
        await fetch(`http://127.0.0.1:${this.port}/`);
        return true;
      } catch {
        return false;
      }
    });
  }

  /** Stop nginx only (the cache and the repository are down); start() brings it back on the same port. */
  async stopServer(): Promise<void> {
    const p = this.nginx;
    this.nginx = null;
    if (p && p.exitCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
  }

  async stop(): Promise<void> {
    await this.stopServer();
    const f = this.fcgi;
    this.fcgi = null;
    if (f && f.exitCode === null) {
      const exited = new Promise((r) => f.once('exit', r));
      f.kill('SIGTERM');
      await exited;
    }
  }

  accessLog(): string {
    try {
      return readFileSync(join(this.dir, 'logs', 'access.log'), 'utf8');
    } catch {
      return '';
    }
  }
}
