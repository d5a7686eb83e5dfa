/**
 * A deliberately vulnerable web server for the demo scan, on 127.0.0.1 only:
 * every built-in plugin of the demo scanner and the example external plugin
 * (bundles/demo-scanner/plugins-example/server_banner.py) find something.
 *
 *   /              no CSP, X-Frame-Options or X-Content-Type-Options; links below
 *   /files/        an "Index of /files/" listing
 *   /search?q=     reflects q unescaped
 *   /safe?q=       reflects q escaped (must not be reported)
 *   every response `Server: DemoHTTP/1.2.3`
 *
 * CLI: `node dist/src/s2n/demo-target.js [--port N] [--host H]` prints its
 * URL on stdout and serves until SIGINT/SIGTERM.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isMainModule } from './is-main.js';

export const DEMO_SERVER_HEADER = 'DemoHTTP/1.2.3';

export interface DemoTargetOptions {
  /** 0 (default): any free port. */
  port?: number;
  /** Default 127.0.0.1: the target is vulnerable on purpose, never expose it. */
  host?: string;
}

export interface DemoTarget {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  port: number;
  close(): Promise<void>;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const INDEX = `<!doctype html>
<html><head><title>Demo shop</title></head>
<body>
<h1>Demo shop</h1>
<p>Price list: <a href="/files/prices.csv">prices.csv</a>, <a href="/files/">all files</a>.</p>
<p>Popular: <a href="/search?q=shoes">shoes</a> · <a href="/safe?q=hats">hats (safe search)</a></p>
<form action="/search" method="get"><input name="q"><input type="submit" value="Search"></form>
</body></html>
`;

const FILES: Record<string, string> = { 'prices.csv': 'item,price\nshoes,40\nhats,15\n', 'backup.sql': '-- nothing to see\n' };

function listing(): string {
  const rows = Object.keys(FILES)
    .sort()
    .map((f) => `<a href="${f}">${f}</a>`)
    .join('\n');
  return `<html><head><title>Index of /files/</title></head><body><h1>Index of /files/</h1><pre><a href="../">../</a>\n${rows}\n</pre></body></html>\n`;
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const u = new URL(req.url ?? '/', 'http://demo.invalid');
  res.setHeader('Server', DEMO_SERVER_HEADER);
  const send = (status: number, type: string, body: string): void => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const q = u.searchParams.get('q') ?? '';
  switch (u.pathname) {
    case '/':
      return send(200, 'text/html; charset=utf-8', INDEX);
    case '/files':
    case '/files/':
      return send(200, 'text/html; charset=utf-8', listing());
    case '/search':
      // The bug on purpose: q goes into the page as it came.
      return send(200, 'text/html; charset=utf-8', `<html><body><h1>Results for ${q}</h1><p>No results.</p></body></html>\n`);
    case '/safe':
      return send(200, 'text/html; charset=utf-8', `<html><body><h1>Results for ${escapeHtml(q)}</h1></body></html>\n`);
    default: {
      const name = u.pathname.startsWith('/files/') ? u.pathname.slice('/files/'.length) : undefined;
      const content = name !== undefined ? FILES[name] : undefined;
      if (content !== undefined) return send(200, 'text/csv; charset=utf-8', content);
      return send(404, 'text/html; charset=utf-8', '<html><body><h1>Not found</h1></body></html>\n');
    }
  }
}

export async function startDemoTarget(opts: DemoTargetOptions = {}): Promise<DemoTarget> {
  const host = opts.host ?? '127.0.0.1';
  const server = createServer(handle);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${hostPart}:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function parseArgs(argv: string[]): DemoTargetOptions {
  const o: DemoTargetOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if ((a === '--port' || a === '-p') && v !== undefined && /^\d+$/.test(v) && Number(v) < 65536) {
      o.port = Number(v);
      i++;
    } else if (a === '--host' && v !== undefined) {
      o.host = v;
      i++;
    } else {
      throw new Error(`demo-target: unknown argument ${a ?? ''} (usage: demo-target [--port N] [--host H])`);
    }
  }
  return o;
}

async function main(): Promise<void> {
  let opts: DemoTargetOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  const t = await startDemoTarget(opts);
  process.stdout.write(`${t.url}\n`);
  const stop = (): void => {
    void t.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (isMainModule(import.meta.url)) void main();
