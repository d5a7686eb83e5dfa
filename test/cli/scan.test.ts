/**
 * `s2n-oci scan` end to end: the demo scanner archives built from Debian
 * packages (once per file), loaded into a fresh store (or pulled from a local
 * registry), scanning the demo target with the built-in plugins and an
 * external one, as root and as the unprivileged s2n-test user. An inspecting
 * plugin reports what the scanner sees from inside (uid, capabilities,
 * read-only root, environment), so the profiles are checked where they apply.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, copyFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoTarget, type DemoTarget } from '../../src/s2n/demo-target.js';
import { DEMO_IMAGE_DEV, DEMO_IMAGE_PROD } from '../../src/s2n/scanner-contract.js';
import { CAN_RUN_AS_USER, cliSandbox, expectRunnerError, IS_ROOT, repoPath, runCli, testUser, type CliOptions, type CliResult, type CliSandbox } from '../helpers/cli.js';
import { demoArchives, type DemoArchives } from '../helpers/demo-archives.js';
import { freePort, REGISTRY_BIN, startRegistry, type TestRegistry } from '../helpers/registry.js';

interface Config {
  label: string;
  as?: 'user';
  skip: boolean;
}

/** The demo archives are built from the host's apt (Debian or Ubuntu). */
const HAS_APT = spawnSync('apt-cache', ['--version'], { stdio: 'ignore' }).status === 0;
const HAS_REGISTRY = IS_ROOT && existsSync(REGISTRY_BIN);

const CONFIGS: Config[] = [
  { label: 'as root', skip: !IS_ROOT || !HAS_APT },
  { label: 'as the unprivileged test user', as: 'user', skip: !CAN_RUN_AS_USER || !HAS_APT },
];

const ALL_PLUGINS = ['-p', 'security_headers', '-p', 'directory_listing', '-p', 'reflected_param', '-p', 'server_banner'];

/** Reports what the scanner process sees from inside: one finding per fact, its value as JSON evidence. */
const INSPECT_PLUGIN = `import hashlib, json, os

NAME = "inspect"


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return None


def _can_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        os.unlink(path)
        return "yes"
    except OSError as e:
        return "no: " + os.strerror(e.errno)


def _sha256(path):
    if not path:
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check(ctx):
    seen = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "CapEff": _status("CapEff"),
        "NoNewPrivs": _status("NoNewPrivs"),
        "write_app": _can_write("/app/x"),
        "write_tmp": _can_write("/tmp/x"),
        "has_shell": os.path.exists("/bin/sh"),
        "ca_sha256": _sha256(os.environ.get("SSL_CERT_FILE")),
        "env": {k: os.environ.get(k) for k in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "NO_PROXY", "S2N_LOG_LEVEL", "S2N_PLUGIN_DIR", "S2N_RESULTS_DIR")},
    }
    # One finding per fact: the report cuts long evidence.
    return [ctx.finding(k, "low", ctx.target, json.dumps(v)) for k, v in sorted(seen.items())]
`;

interface Seen {
  uid: number;
  gid: number;
  CapEff: string;
  NoNewPrivs: string;
  write_app: string;
  write_tmp: string;
  has_shell: boolean;
  ca_sha256: string | null;
  env: Record<string, string | null>;
}

interface JsonReport {
  target: string;
  plugins: string[];
  findings: Array<{ plugin: string; severity: string; title: string; url: string; evidence: string }>;
  errors: Array<{ plugin: string; message: string }>;
}

function parseJson(r: CliResult): JsonReport {
  try {
    return JSON.parse(r.stdout) as JsonReport;
  } catch (e) {
    throw new Error(`stdout is not the JSON report (${(e as Error).message}): ${JSON.stringify(r.stdout)}\nstderr: ${r.stderr}`);
  }
}

function seenOf(report: JsonReport): Seen {
  const facts = report.findings.filter((x) => x.plugin === 'inspect');
  if (facts.length === 0) throw new Error(`no finding from the inspect plugin: ${JSON.stringify(report)}`);
  return Object.fromEntries(facts.map((f) => [f.title, JSON.parse(f.evidence) as unknown])) as unknown as Seen;
}

/** A plain forward HTTP proxy that records the URLs it was asked for. */
async function startRecordingProxy(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(req.url ?? '');
    const up = httpRequest(req.url ?? '', { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

let archives: DemoArchives;
let target: DemoTarget;
let registry: TestRegistry | undefined;
const REG_REPO = 's2n/demo:prod';

beforeAll(async () => {
  if (!HAS_APT) return;
  [archives, target] = await Promise.all([demoArchives(), startDemoTarget()]);
  if (HAS_REGISTRY) {
    registry = await startRegistry();
    // Pushed with our own CLI, from the archive, as a user would publish it.
    const push = await runCli(['copy', '-q', `oci-archive:${archives.prod}`, `docker://${registry.host}/${REG_REPO}`], { timeoutMs: 60_000 });
    if (push.code !== 0) throw new Error(`push failed: ${push.stderr}`);
  }
}, 120_000);

afterAll(async () => {
  await target?.close();
  await registry?.stop();
});

for (const c of CONFIGS) {
  describe.skipIf(c.skip)(`scan ${c.label}`, () => {
    let sb: CliSandbox;
    let plugins: string;
    /** The uid the report files must belong to afterwards. */
    const ownerUid = (): number => (c.as === 'user' ? testUser()!.uid : 0);
    let n = 0;
    const results = (): string => join(sb.dir, `results-${++n}`);
    const cli = (args: string[], extra: CliOptions = {}): Promise<CliResult> => runCli(args, { sandbox: sb, ...(c.as ? { as: c.as } : {}), timeoutMs: 60_000, ...extra });

    beforeAll(async () => {
      sb = cliSandbox();
      // The scanner's user is "other" to the sandbox's owner and must reach the bind-mount sources.
      chmodSync(sb.dir, 0o755);
      plugins = join(sb.dir, 'plugins');
      mkdirSync(plugins, { mode: 0o755 });
      chmodSync(plugins, 0o755);
      copyFileSync(repoPath('bundles/demo-scanner/plugins-example/server_banner.py'), join(plugins, 'server_banner.py'));
      writeFileSync(join(plugins, 'inspect.py'), INSPECT_PLUGIN);
      for (const f of readdirSync(plugins)) chmodSync(join(plugins, f), 0o644);
      // A fresh store: the first command the user types is load.
      expect(existsSync(sb.root)).toBe(false);
      for (const a of [archives.prod, archives.dev]) {
        const r = await cli(['load', '-i', a]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      }
    }, 120_000);

    it('scans the demo target with the built-in and an external plugin, JSON on stdout, logs on stderr, results owned by the caller', async () => {
      const dir = results();
      const r = await cli(['scan', '--plugins', plugins, '--results', dir, '--json', '--url', target.url, ...ALL_PLUGINS]);
      expect(r.code, r.stderr).toBe(0);
      const report = parseJson(r);
      expect(report.target).toBe(target.url);
      expect(report.plugins).toEqual(['security_headers', 'directory_listing', 'reflected_param', 'server_banner']);
      const got = report.findings.map((f) => `${f.plugin}: ${f.title}`).sort();
      expect(got).toEqual(
        [
          'directory_listing: directory listing enabled',
          "reflected_param: parameter 'q' reflected unescaped",
          'security_headers: missing Content-Security-Policy header',
          'security_headers: missing X-Content-Type-Options header',
          'security_headers: missing X-Frame-Options header',
          'server_banner: Server header discloses a version',
        ].sort(),
      );
      expect(report.findings.find((f) => f.plugin === 'server_banner')?.evidence).toBe('Server: DemoHTTP/1.2.3');
      expect(report.errors).toEqual([]);
      // The scanner's logs and summary are on stderr, never mixed into the report.
      expect(r.stderr).toMatch(/INFO s2n: plugin server_banner: 1 finding/);
      expect(r.stderr).toMatch(/s2n-demo: 6 findings/);
      expect(r.stdout).not.toMatch(/INFO|s2n-demo: 6 findings/);
      // The report in the results folder is the one printed, and belongs to the caller, not to a subuid.
      const file = join(dir, 'report.json');
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(report);
      expect(statSync(file).uid).toBe(ownerUid());
      expect(statSync(dir).uid).toBe(ownerUid());
      // The scanner's temporary work folder is gone.
      expect(readdirSync(dir)).toEqual(['report.json']);
    });

    it("prints a table with a summary line by default; the scanner's short flags pass through", async () => {
      const r = await cli(['scan', '--plugins', plugins, '--results', results(), '-u', target.url, '--timeout', '20', ...ALL_PLUGINS]);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^SEVERITY\s+PLUGIN\s+FINDING\s+URL$/);
      // Most severe first.
      expect(lines[1]).toMatch(/^HIGH\s+reflected_param\s+parameter 'q' reflected unescaped\s+http:/);
      expect(r.stdout).toMatch(/^LOW\s+server_banner\s+Server header discloses a version\s+http:\/\/127\.0\.0\.1:\d+\/$/m);
      expect(r.stdout).toMatch(/^MEDIUM\s+directory_listing\s+directory listing enabled/m);
      expect(lines.at(-1)).toBe(`6 findings on ${target.url} (1 high, 3 medium, 2 low)`);
      expect(lines).toHaveLength(8);
    });

    it.skipIf(!HAS_REGISTRY)('pulls the scanner image from a registry into a fresh store and scans', async () => {
      const fresh = join(sb.dir, 'pull-store');
      const r = await cli(['scan', '--image', `${registry!.host}/${REG_REPO}`, '--plugins', plugins, '--results', results(), '--json', '--url', target.url, ...ALL_PLUGINS], { root: fresh });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`pulling ${registry!.host}/${REG_REPO}`);
      const report = parseJson(r);
      expect(report.findings.map((f) => f.plugin).sort()).toEqual(['directory_listing', 'reflected_param', 'security_headers', 'security_headers', 'security_headers', 'server_banner']);
      // It really went to the registry: the store now has the pulled image.
      const images = await cli(['images', '--json'], { root: fresh });
      expect(images.stdout).toContain(`${registry!.host}/s2n/demo`);
      expect(images.stdout).toContain(archives.prodDigest);
    });

    it('prod: non-root, no capabilities, no_new_privs, read-only root, writable /tmp (checked from inside)', async () => {
      // The caller's HTTPS_PROXY reaches the scanner (the http:// target does not use it).
      const r = await cli(['scan', '--plugins', plugins, '--results', results(), '--json', '--url', target.url, '-p', 'inspect'], { env: { HTTPS_PROXY: 'http://proxy.invalid:3128' } });
      expect(r.code, r.stderr).toBe(0);
      const seen = seenOf(parseJson(r));
      expect(seen.uid).toBe(1000);
      expect(seen.gid).toBe(1000);
      expect(seen.CapEff).toBe('0000000000000000');
      expect(seen.NoNewPrivs).toBe('1');
      expect(seen.write_app).toBe('no: Read-only file system');
      expect(seen.write_tmp).toBe('yes');
      expect(seen.has_shell).toBe(false);
      expect(seen.env).toMatchObject({ S2N_LOG_LEVEL: 'info', S2N_PLUGIN_DIR: '/plugins', S2N_RESULTS_DIR: '/results', SSL_CERT_FILE: null, HTTPS_PROXY: 'http://proxy.invalid:3128', HTTP_PROXY: null });
    });

    it('dev: the dev image variant with a writable root and debug logging', async () => {
      const r = await cli(['scan', '--profile', 'dev', '--plugins', plugins, '--results', results(), '--json', '--url', target.url, '-p', 'inspect']);
      expect(r.code, r.stderr).toBe(0);
      const seen = seenOf(parseJson(r));
      expect(seen.write_app).toBe('yes');
      // Only the dev variant has busybox's shell.
      expect(seen.has_shell).toBe(true);
      expect(seen.env.S2N_LOG_LEVEL).toBe('debug');
      expect(r.stderr).toMatch(/DEBUG/);
      const inspect = await cli(['inspect', DEMO_IMAGE_DEV]);
      expect(inspect.stdout).toMatch(/"io\.s2n\.variant": "dev"/);
      // The scan config may make dev the default profile.
      const conf = join(sb.dir, 'dev-config');
      mkdirSync(join(conf, 's2n-oci'), { recursive: true });
      for (const d of [conf, join(conf, 's2n-oci')]) chmodSync(d, 0o755);
      writeFileSync(join(conf, 's2n-oci', 'scan.json'), JSON.stringify({ profile: 'dev' }));
      chmodSync(join(conf, 's2n-oci', 'scan.json'), 0o644);
      const byConfig = await cli(['scan', '--plugins', plugins, '--results', results(), '--json', '--url', target.url, '-p', 'inspect'], { env: { XDG_CONFIG_HOME: conf } });
      expect(byConfig.code, byConfig.stderr).toBe(0);
      expect(seenOf(parseJson(byConfig))).toMatchObject({ has_shell: true, write_app: 'yes' });
    });

    describe('refuses before anything starts (exit 125, one line and a hint)', () => {
      const expectRefused = (r: CliResult, message: RegExp, hint: RegExp, resultsDir: string): void => {
        expectRunnerError(r, message, hint);
        expect(existsSync(resultsDir)).toBe(false);
      };

      it('a missing --plugins folder', async () => {
        const dir = results();
        const r = await cli(['scan', '--plugins', join(sb.dir, 'no-such-plugins'), '--results', dir, '--url', target.url]);
        expectRefused(r, /--plugins .*no-such-plugins: no such directory/, /plugin/, dir);
      });

      it('a plugin file the scanner user cannot read', async () => {
        const p = join(sb.dir, 'private-plugins');
        mkdirSync(p, { mode: 0o755 });
        chmodSync(p, 0o755);
        writeFileSync(join(p, 'secret.py'), 'NAME = "secret"\n\ndef check(ctx):\n    return []\n');
        chmodSync(join(p, 'secret.py'), 0o600);
        const dir = results();
        const r = await cli(['scan', '--plugins', p, '--results', dir, '--url', target.url, '-p', 'secret']);
        expectRefused(r, /secret\.py is not readable/, /chmod o\+r .*secret\.py/, dir);
      });

      it('the default demo image missing from an empty store names `load`', async () => {
        const dir = results();
        const r = await cli(['scan', '--results', dir, '--url', target.url], { root: join(sb.dir, 'empty-store') });
        expectRefused(r, new RegExp(`${DEMO_IMAGE_PROD} is not in the store`), /s2n-oci load -i \/.*\/s2n-demo-prod\.oci\.tar/, dir);
      });

      it('a registry image that is missing and cannot be pulled names `load` for hosts without the registry', async () => {
        const ref = `127.0.0.1:${await freePort()}/s2n/demo:prod`;
        const never = results();
        const r1 = await cli(['scan', '--pull', 'never', '--image', ref, '--results', never, '--url', target.url], { root: join(sb.dir, 'empty-store') });
        expectRefused(r1, new RegExp(`${ref} is not in the store and --pull=never`), /s2n-oci load -i FILE/, never);
        const dir = results();
        const r2 = await cli(['scan', '--image', ref, '--results', dir, '--url', target.url], { root: join(sb.dir, 'empty-store') });
        expect(r2.code, r2.stderr).toBe(125);
        expect(r2.stderr).toMatch(new RegExp(`^Error: .*${ref}.*ECONNREFUSED`, 'm'));
        expect(r2.stderr).toMatch(new RegExp(`^hint: .*s2n-oci load -i FILE, saved with s2n-oci save ${ref}`, 'm'));
        expect(existsSync(dir)).toBe(false);
      });

      it('a digest pinned in the scan config that the image does not have, showing both', async () => {
        const other = `sha256:${'ab'.repeat(32)}`;
        const conf = join(sb.dir, 'pinned-config');
        mkdirSync(join(conf, 's2n-oci'), { recursive: true, mode: 0o755 });
        chmodSync(conf, 0o755);
        chmodSync(join(conf, 's2n-oci'), 0o755);
        writeFileSync(join(conf, 's2n-oci', 'scan.json'), JSON.stringify({ image: DEMO_IMAGE_PROD, digest: other }));
        chmodSync(join(conf, 's2n-oci', 'scan.json'), 0o644);
        const dir = results();
        const r = await cli(['scan', '--results', dir, '--url', target.url], { env: { XDG_CONFIG_HOME: conf } });
        expectRefused(r, new RegExp(`${DEMO_IMAGE_PROD} is ${archives.prodDigest}, but the config pins ${other}`), new RegExp(`load -i FILE.*"digest" in ${conf}/s2n-oci/scan\\.json`), dir);
        // The same pin with the image's own digest is accepted.
        writeFileSync(join(conf, 's2n-oci', 'scan.json'), JSON.stringify({ image: DEMO_IMAGE_PROD, digest: archives.prodDigest }));
        const ok = await cli(['scan', '--results', results(), '--json', '--url', target.url, '-p', 'security_headers'], { env: { XDG_CONFIG_HOME: conf } });
        expect(ok.code, ok.stderr).toBe(0);
      });
    });

    it("returns the scanner's exit code: 3 for an unreachable target (report still written), 2 for a usage error", async () => {
      const closed = await freePort();
      const dir = results();
      const r = await cli(['scan', '--results', dir, '--json', '--url', `http://127.0.0.1:${closed}/`]);
      expect(r.code, r.stderr).toBe(3);
      const report = parseJson(r);
      expect(report.findings).toEqual([]);
      expect(report.errors).toHaveLength(1);
      expect(report.errors[0]?.message).toMatch(/unreachable.*refused/i);
      expect(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'))).toEqual(report);
      expect(statSync(join(dir, 'report.json')).uid).toBe(ownerUid());

      // Without --results: a new folder under $XDG_STATE_HOME/s2n-oci/scans.
      const usage = await cli(['scan', '--json', '--url', target.url, '-p', 'no_such_plugin']);
      expect(usage.code, usage.stderr).toBe(2);
      expect(usage.stdout).toBe('');
      expect(usage.stderr).toMatch(/no_such_plugin/);
      expect(usage.stderr).toContain(`the scanner exited 2 without a report (results folder: ${sb.env.XDG_STATE_HOME}/s2n-oci/scans/`);
      // A results folder that holds an earlier scan's report: that one is not shown as this scan's.
      const again = await cli(['scan', '--results', dir, '--json', '--url', target.url, '-p', 'no_such_plugin']);
      expect(again.code, again.stderr).toBe(2);
      expect(again.stdout).toBe('');
      expect(again.stderr).toContain(`the scanner exited 2 without a report (results folder: ${dir})`);
      expect(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'))).toEqual(report);
    });

    it('--output writes the JSON report to a file; --ca-bundle and --proxy reach the scanner', async () => {
      const ca = join(sb.dir, 'ca.pem');
      copyFileSync('/etc/ssl/certs/ca-certificates.crt', ca);
      chmodSync(ca, 0o644);
      const out = join(sb.dir, `out-${n}.json`);
      // A results folder of the caller's, private and with a file of its own: left as it was.
      const dir = results();
      const keeper = c.as === 'user' ? testUser()!.uid : 4242;
      mkdirSync(dir, { mode: 0o700 });
      chmodSync(dir, 0o700);
      writeFileSync(join(dir, 'keep.txt'), 'mine\n');
      chownSync(join(dir, 'keep.txt'), keeper, keeper);
      chownSync(dir, ownerUid(), ownerUid());
      const proxy = await startRecordingProxy();
      try {
        const r = await cli(['scan', '--plugins', plugins, '--results', dir, '--output', out, '--ca-bundle', ca, '--proxy', proxy.url, '--url', target.url, '-p', 'inspect', '-p', 'security_headers'], {
          // The caller's proxy settings pass through; --proxy replaces the proxy but keeps NO_PROXY.
          env: { HTTPS_PROXY: 'http://replaced.invalid:3128', NO_PROXY: 'internal.example' },
        });
        expect(r.code, r.stderr).toBe(0);
        // Without --json stdout is the table; the file is the JSON report.
        expect(r.stdout).toMatch(/^SEVERITY/);
        const report = JSON.parse(readFileSync(out, 'utf8')) as JsonReport;
        expect(statSync(out).uid).toBe(ownerUid());
        expect(readFileSync(join(dir, 'report.json'), 'utf8')).toBe(readFileSync(out, 'utf8'));
        expect(statSync(join(dir, 'report.json')).uid).toBe(ownerUid());
        expect(readdirSync(dir).sort()).toEqual(['keep.txt', 'report.json']);
        expect(statSync(dir).mode & 0o777).toBe(0o700);
        expect(statSync(join(dir, 'keep.txt')).uid).toBe(keeper);
        const seen = seenOf(report);
        expect(seen.env.SSL_CERT_FILE).toBe('/etc/s2n-oci/ca-bundle.pem');
        // The CA bundle inside is the file given.
        expect(seen.ca_sha256).toBe(createHash('sha256').update(readFileSync(ca)).digest('hex'));
        expect(seen.env).toMatchObject({ HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url, https_proxy: proxy.url, NO_PROXY: 'internal.example' });
        expect(report.findings.filter((f) => f.plugin === 'security_headers')).toHaveLength(3);
        // urllib really went through the proxy.
        expect(proxy.seen).toContain(target.url);
      } finally {
        await proxy.close();
      }
    });
  });
}

describe.skipIf(!IS_ROOT || !HAS_APT)('scan with crun (cgroup2 shim)', () => {
  for (const as of CAN_RUN_AS_USER ? ([undefined, 'user'] as const) : ([undefined] as const)) {
    it(`scans with --runtime crun ${as ? 'as the test user' : 'as root'}`, async () => {
      const sb = cliSandbox();
      chmodSync(sb.dir, 0o755);
      const opts: CliOptions = { sandbox: sb, cgroup2: true, timeoutMs: 60_000, ...(as ? { as } : {}) };
      expect((await runCli(['load', '-i', archives.prod], opts)).code).toBe(0);
      const plugins = join(sb.dir, 'plugins');
      mkdirSync(plugins, { mode: 0o755 });
      chmodSync(plugins, 0o755);
      writeFileSync(join(plugins, 'inspect.py'), INSPECT_PLUGIN);
      chmodSync(join(plugins, 'inspect.py'), 0o644);
      const r = await runCli(['scan', '--runtime', 'crun', '--plugins', plugins, '--results', join(sb.dir, 'res'), '--json', '--url', target.url, '-p', 'inspect', '-p', 'directory_listing'], opts);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/using runc/);
      const report = parseJson(r);
      expect(new Set(report.findings.map((f) => f.plugin))).toEqual(new Set(['directory_listing', 'inspect']));
      const seen = seenOf(report);
      expect(seen).toMatchObject({ uid: 1000, CapEff: '0000000000000000', NoNewPrivs: '1', write_app: 'no: Read-only file system', write_tmp: 'yes' });
    });
  }
});
