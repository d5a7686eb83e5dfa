/**
 * The demo scanner (bundles/demo-scanner/app/runner.py) with the host's
 * python3 against the demo target: each plugin finds what it should, the
 * external plugin API, the report file and shape, stdout/stderr split, exit
 * codes, and the proxy and CA-bundle environment.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoTarget, type DemoTarget } from '../../src/s2n/demo-target.js';
import { BUILTIN_PLUGINS, DEMO_SCANNER_VERSION, REPORT_FILE, ScannerExit, type ScanReport } from '../../src/s2n/scanner-contract.js';
import { tempDir } from '../helpers/cli.js';
import { EXAMPLE_PLUGINS, HOST_PYTHON, runScanner } from './scanner-helpers.js';

let target: DemoTarget;

beforeAll(async () => {
  target = await startDemoTarget();
});
afterAll(async () => {
  await target?.close();
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** Scan with a fresh results dir; returns the run and the parsed report.json. */
async function scan(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string; report: ScanReport; results: string }> {
  const results = tempDir('s2n-results-');
  const r = await runScanner(['scan', ...args], { S2N_RESULTS_DIR: results, ...env });
  const report = JSON.parse(readFileSync(join(results, REPORT_FILE), 'utf8')) as ScanReport;
  return { ...r, report, results };
}

const titles = (rep: ScanReport, plugin: string): string[] => rep.findings.filter((f) => f.plugin === plugin).map((f) => f.title);

describe.skipIf(HOST_PYTHON === undefined)('demo scanner runner.py (host python3)', () => {
  it('security_headers reports the three missing headers of the target page, not HSTS on http', async () => {
    const { code, report } = await scan(['-u', target.url, '-p', 'security_headers']);
    expect(code).toBe(ScannerExit.ok);
    expect(titles(report, 'security_headers').sort()).toEqual([
      'missing Content-Security-Policy header',
      'missing X-Content-Type-Options header',
      'missing X-Frame-Options header',
    ]);
  });

  it('directory_listing finds /files/ from the links of the page', async () => {
    const { report } = await scan(['--url', target.url, '-p', 'directory_listing']);
    expect(report.findings).toEqual([
      expect.objectContaining({ plugin: 'directory_listing', severity: 'medium', url: `${target.url}files/`, evidence: 'Index of /files/' }),
    ]);
  });

  it('reflected_param flags /search?q= (unescaped) and not /safe?q= (escaped)', async () => {
    const { report } = await scan(['-u', target.url, '-p', 'reflected_param']);
    expect(report.findings).toHaveLength(1);
    const f = report.findings[0];
    expect(f?.severity).toBe('high');
    expect(f?.url).toContain(`${target.url}search?q=`);
    expect(f?.title).toBe("parameter 'q' reflected unescaped");
  });

  it('loads the example external plugin from $S2N_PLUGIN_DIR', async () => {
    const { code, report } = await scan(['-u', target.url, '-p', 'server_banner'], { S2N_PLUGIN_DIR: EXAMPLE_PLUGINS });
    expect(code).toBe(0);
    expect(report.plugins).toEqual(['server_banner']);
    expect(report.findings).toEqual([
      { plugin: 'server_banner', severity: 'low', title: 'Server header discloses a version', url: target.url, evidence: 'Server: DemoHTTP/1.2.3' },
    ]);
  });

  it('writes the report in the documented shape; stdout is one summary line, logs are on stderr', async () => {
    const out = join(tempDir('s2n-out-'), 'copy.json');
    const { code, stdout, stderr, report, results } = await scan(['-u', target.url, '--output', out]);
    expect(code).toBe(0);
    expect(report).toMatchObject({ scanner: 's2n-demo', version: DEMO_SCANNER_VERSION, target: target.url, plugins: [...BUILTIN_PLUGINS], errors: [] });
    expect(report.started).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(report.finished).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // Without -p: every built-in plugin, each finding something on the demo target.
    expect(new Set(report.findings.map((f) => f.plugin))).toEqual(new Set(BUILTIN_PLUGINS));
    for (const f of report.findings) {
      expect(Object.keys(f).sort()).toEqual(['evidence', 'plugin', 'severity', 'title', 'url']);
      expect(['low', 'medium', 'high']).toContain(f.severity);
    }
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(report);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(stdout).toContain(`5 findings (1 high, 3 medium, 1 low) from 3 plugins on ${target.url}; report: ${join(results, REPORT_FILE)}, ${out}`);
    expect(stderr).toContain('INFO s2n: plugin reflected_param: 1 finding');
  });

  it('prints the report on stdout when there is no results dir and no --output', async () => {
    const r = await runScanner(['scan', '-u', target.url, '-p', 'security_headers', '--log-level', 'error']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as ScanReport).findings).toHaveLength(3);
    expect(r.stderr).toBe('');
  });

  it('exits 3 with the reason in the report when the target does not answer', async () => {
    const s = createHttpServer();
    const port = await listen(s);
    await new Promise((r) => s.close(r));
    const { code, report } = await scan(['-u', `http://127.0.0.1:${port}/`, '--timeout', '5']);
    expect(code).toBe(ScannerExit.unreachable);
    expect(report.findings).toEqual([]);
    expect(report.errors[0]?.message).toMatch(/target unreachable: .*Connection refused/);
  });

  it('exits 2 on usage errors: no --url, a non-http URL, an unknown plugin', async () => {
    const noUrl = await runScanner(['scan']);
    expect(noUrl.code).toBe(ScannerExit.usage);
    expect(noUrl.stderr).toContain('the following arguments are required: -u/--url');
    const ftp = await runScanner(['scan', '-u', 'ftp://example.org/']);
    expect(ftp.code).toBe(2);
    expect(ftp.stderr).toContain('--url must be an http:// or https:// URL');
    const unknown = await runScanner(['scan', '-u', target.url, '-p', 'nope'], { S2N_PLUGIN_DIR: EXAMPLE_PLUGINS });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(`unknown plugin 'nope': not built in (security_headers, directory_listing, reflected_param) and no nope.py in $S2N_PLUGIN_DIR (${EXAMPLE_PLUGINS})`);
    const help = await runScanner(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('scan');
  });

  it('refuses a plugin file without the API, and keeps other findings when a plugin raises', async () => {
    const dir = tempDir('s2n-plugins-');
    writeFileSync(join(dir, 'noname.py'), 'def check(ctx):\n    return []\n');
    writeFileSync(join(dir, 'boom.py'), 'NAME = "boom"\n\ndef check(ctx):\n    raise RuntimeError("kaput")\n');
    const bad = await runScanner(['scan', '-u', target.url, '-p', 'noname'], { S2N_PLUGIN_DIR: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("it must define NAME = 'noname' and def check(ctx)");
    const { code, report } = await scan(['-u', target.url, '-p', 'boom', '-p', 'directory_listing'], { S2N_PLUGIN_DIR: dir });
    expect(code).toBe(0);
    expect(report.errors).toEqual([{ plugin: 'boom', message: 'RuntimeError: kaput' }]);
    expect(report.findings.map((f) => f.plugin)).toEqual(['directory_listing']);
  });

  it('lists built-in and external plugins', async () => {
    const r = await runScanner(['plugins'], { S2N_PLUGIN_DIR: EXAMPLE_PLUGINS });
    expect(r.stdout.split('\n').map((l) => l.split('\t')[0])).toEqual([...BUILTIN_PLUGINS, 'server_banner', '']);
  });

  it('goes through HTTP_PROXY, and around it for NO_PROXY hosts', async () => {
    const seen: string[] = [];
    const proxy = createHttpServer((req, res) => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
      res.writeHead(200, { 'Content-Type': 'text/html', 'X-Frame-Options': 'DENY', 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': "default-src 'self'" });
      res.end('<html>via proxy</html>');
    });
    const port = await listen(proxy);
    try {
      // scan.invalid cannot resolve: only the proxy can answer it.
      const via = await scan(['-u', 'http://scan.invalid/', '-p', 'security_headers'], { HTTP_PROXY: `http://127.0.0.1:${port}` });
      expect(via.code).toBe(0);
      expect(via.report.findings).toEqual([]);
      expect(seen).toContain('GET http://scan.invalid/');
      seen.length = 0;
      const around = await scan(['-u', target.url, '-p', 'security_headers'], { HTTP_PROXY: `http://127.0.0.1:${port}`, NO_PROXY: '127.0.0.1' });
      expect(around.report.findings).toHaveLength(3);
      expect(seen).toEqual([]);
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  });

  it('trusts the CA in SSL_CERT_FILE (and REQUESTS_CA_BUNDLE), fails as unreachable without it; reports missing HSTS on https', async () => {
    const dir = tempDir('s2n-tls-');
    mkdirSync(dir, { recursive: true });
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html', 'X-Frame-Options': 'DENY', 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': "default-src 'self'" });
      res.end('<html>tls</html>');
    });
    const port = await listen(server as unknown as Server);
    const url = `https://127.0.0.1:${port}/`;
    try {
      const untrusted = await scan(['-u', url, '-p', 'security_headers']);
      expect(untrusted.code).toBe(ScannerExit.unreachable);
      expect(untrusted.report.errors[0]?.message).toContain('CERTIFICATE_VERIFY_FAILED');
      const missing = await runScanner(['scan', '-u', url], { SSL_CERT_FILE: join(dir, 'missing.pem') });
      expect(missing.code).toBe(ScannerExit.usage);
      expect(missing.stderr).toContain(`read CA bundle ${join(dir, 'missing.pem')}`);
      for (const v of ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE']) {
        const trusted = await scan(['-u', url, '-p', 'security_headers'], { [v]: cert });
        expect(trusted.code).toBe(0);
        expect(trusted.report.findings.map((f) => f.title)).toEqual(['missing Strict-Transport-Security header']);
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
