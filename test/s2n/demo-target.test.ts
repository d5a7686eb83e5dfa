/** The demo target: the weaknesses the scanner's plugins look for, and its CLI. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_SERVER_HEADER, startDemoTarget, type DemoTarget } from '../../src/s2n/demo-target.js';
import { REPO_ROOT } from '../helpers/cli.js';

let t: DemoTarget;
beforeAll(async () => {
  t = await startDemoTarget();
});
afterAll(async () => {
  await t?.close();
});

describe('demo target', () => {
  it('listens on 127.0.0.1 on a free port', () => {
    expect(t.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(t.port).toBeGreaterThan(0);
  });

  it('serves the index without security headers and with a versioned Server header', async () => {
    const r = await fetch(t.url);
    expect(r.status).toBe(200);
    expect(r.headers.get('server')).toBe(DEMO_SERVER_HEADER);
    for (const h of ['content-security-policy', 'x-frame-options', 'x-content-type-options', 'strict-transport-security']) expect(r.headers.get(h)).toBeNull();
    const body = await r.text();
    expect(body).toContain('href="/files/"');
    expect(body).toContain('href="/search?q=shoes"');
  });

  it('lists /files/ and serves its files', async () => {
    expect(await (await fetch(new URL('/files/', t.url))).text()).toContain('<title>Index of /files/</title>');
    expect(await (await fetch(new URL('/files/prices.csv', t.url))).text()).toContain('shoes,40');
    expect((await fetch(new URL('/nothing', t.url))).status).toBe(404);
  });

  it('reflects q unescaped on /search and escaped on /safe', async () => {
    const probe = encodeURIComponent('<b x="1">');
    expect(await (await fetch(new URL(`/search?q=${probe}`, t.url))).text()).toContain('<b x="1">');
    const safe = await (await fetch(new URL(`/safe?q=${probe}`, t.url))).text();
    expect(safe).not.toContain('<b x');
    expect(safe).toContain('&#60;b x=&#34;1&#34;&#62;');
  });

  it('runs from the command line, printing its URL, until SIGTERM', async () => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 's2n', 'demo-target.js'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
      const url = chunk.toString().trim();
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect((await fetch(url)).headers.get('server')).toBe(DEMO_SERVER_HEADER);
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('refuses unknown arguments with exit status 2', async () => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 's2n', 'demo-target.js'), '--bogus'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(err).toContain('unknown argument --bogus');
  });
});
