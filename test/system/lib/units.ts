/** Units and files the health-check scenarios put into generations. */

/** A service that runs for a second, then fails, and is restarted for ever: a crash loop that looks fine at first. */
export const CRASH_LOOP_UNIT = `[Unit]
Description=bed: a service that crash-loops (fails a second after every start)

[Service]
ExecStart=/bin/sh -c 'sleep 1; echo "crashy: cannot open /etc/crashy.conf" >&2; exit 1'
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`;

/** A real HTTP server (Node, bound to 127.0.0.1:8080) answering /health with the status the unit gives it. */
export function webUnit(status: number): string {
  return `[Unit]
Description=bed: web application on 127.0.0.1:8080 (health answers ${status})

[Service]
ExecStart=/opt/node/bin/node /etc/bed-web/server.mjs ${status}
Restart=always

[Install]
WantedBy=multi-user.target
`;
}

export const WEB_SERVER = `import { createServer } from 'node:http';
const status = Number(process.argv[2]);
createServer((req, res) => {
  if (req.url === '/health') res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'healthy\\n' : 'database connection refused\\n');
  else res.writeHead(404).end();
}).listen(8080, '127.0.0.1');
`;

/** The checks of a generation with the web application: its endpoint, its unit, and a command run as a dynamic user. */
export const WEB_CHECK = {
  web: { type: 'http', url: 'http://127.0.0.1:8080/health', bodyPattern: '^healthy', timeoutSec: 3 },
  'web-unit': { type: 'unit', unit: 'bed-web.service', timeoutSec: 3 },
  whoami: { type: 'command', argv: ['/bin/sh', '-c', 'echo "uid=$(id -u) commit=$PULLNIX_COMMIT"; test "$(id -u)" != 0'], timeoutSec: 5 },
};
