/**
 * scripts/build-demo-images.ts end to end: both variants built from Debian
 * packages (cached in <repo>/.cache/s2n-oci/debs between runs, so only the
 * first run downloads), checked as OCI images, rebuilt to the same digests,
 * loaded with the CLI (as root and rootless), and then the real proof: the
 * loaded layers unpacked into a rootfs where the image's own python3 scans
 * the demo target as uid 1000 (chroot; needs root).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateImageConfig, validateIndex, validateManifest } from '../../src/oci/validate.js';
import type { Digest, ImageConfig, ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { startDemoTarget, type DemoTarget } from '../../src/s2n/demo-target.js';
import {
  DEMO_IMAGE_DEV,
  DEMO_IMAGE_PROD,
  demoArchiveName,
  REPORT_FILE,
  SCANNER_ENTRYPOINT,
  SCANNER_UID,
  scannerEnv,
  type ScanReport,
} from '../../src/s2n/scanner-contract.js';
import { runProcess } from '../helpers/process.js';
import { CAN_RUN_AS_USER, cliSandbox, IS_ROOT, REPO_ROOT, runCli, tempDir } from '../helpers/cli.js';

const SCRIPT = join(REPO_ROOT, 'dist', 'scripts', 'build-demo-images.js');
/** Kept between runs (like node_modules), so only the first run downloads. */
const DEB_CACHE = join(REPO_ROOT, '.cache', 's2n-oci', 'debs');
const HAS_APT = spawnSync('apt-cache', ['--version'], { stdio: 'ignore' }).status === 0;
const HAS_SKOPEO = spawnSync('skopeo', ['--version'], { stdio: 'ignore' }).status === 0;

interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runScript(args: string[], env: Record<string, string | undefined> = {}): Promise<ScriptRun> {
  return runProcess(process.execPath, [SCRIPT, ...args], { env: { ...process.env, ...env }, timeoutMs: 600_000 });
}

/** The files of an oci-archive, by name. */
async function readTar(buf: Buffer): Promise<Map<string, { body: Buffer; uid: number; mode: number; type: string; linkname: string }>> {
  const ex = tar.extract();
  const out = new Map<string, { body: Buffer; uid: number; mode: number; type: string; linkname: string }>();
  const done = (async () => {
    for await (const e of ex) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.set(e.header.name, { body: Buffer.concat(chunks), uid: e.header.uid ?? -1, mode: e.header.mode ?? 0, type: e.header.type ?? '', linkname: e.header.linkname ?? '' });
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

interface Archive {
  path: string;
  files: Map<string, { body: Buffer }>;
  index: ImageIndex;
  manifest: ImageManifest;
  manifestDigest: Digest;
  config: ImageConfig;
  blob(d: Digest): Buffer;
}

async function openArchive(path: string): Promise<Archive> {
  const files = await readTar(readFileSync(path));
  const blob = (d: Digest): Buffer => {
    const f = files.get(`blobs/sha256/${d.slice('sha256:'.length)}`);
    if (f === undefined) throw new Error(`${path} has no blob ${d}`);
    return f.body;
  };
  const index = validateIndex(JSON.parse(files.get('index.json')?.body.toString() ?? 'null'), { what: `${path} index.json` });
  const manifestDigest = index.manifests[0]?.digest as Digest;
  const manifest = validateManifest(JSON.parse(blob(manifestDigest).toString()), { what: `${path} manifest` });
  const config = validateImageConfig(JSON.parse(blob(manifest.config.digest).toString()), { what: `${path} config` });
  return { path, files, index, manifest, manifestDigest, config, blob };
}

/** chroot without blocking the event loop (the demo target answers from this process). */
function chroot(args: string[], env: Record<string, string>): Promise<ScriptRun> {
  return runProcess('/usr/sbin/chroot', args, { env });
}

let out: string;
let first: ScriptRun;
let prod: Archive;
let dev: Archive;
let target: DemoTarget;

describe.skipIf(!HAS_APT)('build-demo-images', () => {
  beforeAll(async () => {
    out = tempDir('s2n-demo-out-');
    // A cold cache downloads ~15 MB of .debs; a warm build takes a few seconds.
    first = await runScript(['--out', out, '--cache', DEB_CACHE]);
    if (first.code !== 0) throw new Error(`build-demo-images failed:\n${first.stderr}`);
    prod = await openArchive(join(out, demoArchiveName('prod')));
    dev = await openArchive(join(out, demoArchiveName('dev')));
    target = await startDemoTarget();
  }, 600_000);
  afterAll(async () => {
    await target?.close();
  });

  it('writes both archives, paths on stdout and progress on stderr', () => {
    expect(first.stdout).toBe(`${join(out, 's2n-demo-prod.oci.tar')}\n${join(out, 's2n-demo-dev.oci.tar')}\n`);
    expect(first.stderr).toMatch(/build-demo-images: \d+ packages in the base layer: .*libc6.*python3\.\d+-minimal/);
    expect(first.stderr).toContain(`wrote ${join(out, 's2n-demo-prod.oci.tar')} (${DEMO_IMAGE_PROD}, ${prod.manifestDigest}`);
  });

  it('names each image and describes the scanner contract in its config', () => {
    expect(prod.index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'])).toEqual([DEMO_IMAGE_PROD]);
    expect(dev.index.manifests.map((m) => m.annotations?.['io.containerd.image.name'])).toEqual([DEMO_IMAGE_DEV]);
    expect(prod.config.config).toMatchObject({
      User: 's2n',
      Entrypoint: [...SCANNER_ENTRYPOINT],
      Cmd: ['--help'],
      WorkingDir: '/app',
      Env: scannerEnv('prod'),
      Labels: expect.objectContaining({ 'io.s2n.variant': 'prod', 'org.opencontainers.image.title': 's2n-demo' }) as unknown,
    });
    expect(dev.config.config?.Labels?.['io.s2n.variant']).toBe('dev');
    expect(dev.config.config?.Env).toContain('S2N_LOG_LEVEL=debug');
    expect(prod.config.created).toBe('2024-01-01T00:00:00.000Z');
    expect(prod.config.history?.map((h) => h.created_by?.split(':')[0])).toEqual(['debian packages', 'deps', 'app']);
  });

  it('makes dev the prod layers plus a debug layer, and prod the smaller archive', () => {
    expect(prod.manifest.layers).toHaveLength(3);
    expect(dev.manifest.layers).toHaveLength(4);
    expect(dev.manifest.layers.slice(0, 3)).toEqual(prod.manifest.layers);
    expect(statSync(prod.path).size).toBeLessThan(statSync(dev.path).size);
    // Python and its libraries, without docs: a few tens of MB, not hundreds.
    expect(statSync(prod.path).size).toBeLessThan(40e6);
  });

  it('builds the same bytes again from the cache', async () => {
    const again = tempDir('s2n-demo-again-');
    const r = await runScript(['--out', again, '--cache', DEB_CACHE, '--variant', 'prod']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('packages from the cache');
    expect(r.stdout).toBe(`${join(again, 's2n-demo-prod.oci.tar')}\n`);
    expect(readFileSync(join(again, 's2n-demo-prod.oci.tar')).equals(readFileSync(prod.path))).toBe(true);
  });

  it.skipIf(!HAS_SKOPEO)('is an oci-archive skopeo reads', async () => {
    const layout = join(tempDir('s2n-demo-skopeo-'), 'layout');
    const r = spawnSync('skopeo', ['copy', '--quiet', `oci-archive:${prod.path}`, `oci:${layout}:prod`], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const idx = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as ImageIndex;
    // Layers and config are copied as they are, so the manifest keeps its digest.
    expect(idx.manifests[0]?.digest).toBe(prod.manifestDigest);
  });

  it('puts python in the base layer, the s2n user in /etc/passwd, the app owned by uid 1000', async () => {
    const [base, deps, app] = await Promise.all(prod.manifest.layers.map(async (l) => readTar(gunzipSync(prod.blob(l.digest)))));
    if (!base || !deps || !app) throw new Error('missing layers');
    expect([...base.keys()].some((n) => /^usr\/bin\/python3\.\d+$/.test(n))).toBe(true);
    expect(base.get('usr/bin/python3')?.type).toBe('symlink');
    expect(base.get('etc/passwd')?.body.toString()).toContain('s2n:x:1000:1000:s2n scanner:/home/s2n:');
    expect(base.get('etc/group')?.body.toString()).toContain('s2n:x:1000:');
    expect(base.get('home/s2n/')?.uid).toBe(SCANNER_UID);
    expect(base.get('tmp/')?.mode).toBe(0o1777);
    expect([...base.keys()].filter((n) => n.startsWith('usr/share/doc/') || n.startsWith('usr/share/man/'))).toEqual([]);
    expect(deps.get('etc/ssl/certs/ca-certificates.crt')?.body.toString()).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect([...deps.keys()].some((n) => /^usr\/local\/lib\/python3\.\d+\/dist-packages\/s2n_sdk\/__init__\.py$/.test(n))).toBe(true);
    const appFiles = [...app.entries()].filter(([n]) => n.startsWith('app/'));
    expect(appFiles.map(([n]) => n)).toContain('app/runner.py');
    expect(appFiles.map(([n]) => n)).toContain('app/builtin/reflected_param.py');
    for (const [, e] of appFiles) expect(e.uid).toBe(SCANNER_UID);
    expect(app.get('results/')?.uid).toBe(SCANNER_UID);
    expect(app.get('plugins/')?.uid).toBe(0);
  });

  it('fails with one clear line on a host without apt', async () => {
    const r = await runScript(['--out', tempDir(), '--cache', tempDir()], { PATH: '/nonexistent' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('build-demo-images: check host: apt-cache not found: this host has no apt');
    expect(r.stderr).toContain('hint: build the demo images on Debian or Ubuntu');
  });

  it('refuses unknown arguments with exit status 2', async () => {
    const r = await runScript(['--variant', 'huge']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown variant huge');
  });

  it.skipIf(!CAN_RUN_AS_USER)('loads into a rootless store', async () => {
    const sb = cliSandbox();
    const archive = join(sb.dir, 'prod.oci.tar');
    copyFileSync(prod.path, archive);
    const r = await runCli(['load', '-i', archive], { as: 'user' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Loaded image: ${DEMO_IMAGE_PROD}\n`);
  });

  it.skipIf(!IS_ROOT)('runs: the loaded prod image\'s own python scans the demo target as uid 1000, with the external plugin', async () => {
    const sb = cliSandbox();
    const load = await runCli(['load', '-i', prod.path]);
    expect(load.code).toBe(0);
    expect(load.stdout).toBe(`Loaded image: ${DEMO_IMAGE_PROD}\n`);
    const images = await runCli(['images', '--json']);
    expect(images.stdout).toContain(prod.manifestDigest);

    // Unpack the layers the store holds (not the archive's), in order.
    const rootfs = join(tempDir('s2n-demo-rootfs-'), 'rootfs');
    mkdirSync(rootfs);
    for (const l of prod.manifest.layers) {
      execFileSync('tar', ['--numeric-owner', '-xzpf', join(sb.root, 'blobs', 'sha256', l.digest.slice('sha256:'.length)), '-C', rootfs]);
    }
    copyFileSync(join(REPO_ROOT, 'bundles', 'demo-scanner', 'plugins-example', 'server_banner.py'), join(rootfs, 'plugins', 'server_banner.py'));
    const env = Object.fromEntries(scannerEnv('prod').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const r = await chroot(
      ['--userspec=1000:1000', rootfs, ...SCANNER_ENTRYPOINT, 'scan', '-u', target.url, '-p', 'security_headers', '-p', 'directory_listing', '-p', 'reflected_param', '-p', 'server_banner'],
      env,
    );
    expect(r.stderr).toContain('INFO s2n: plugin server_banner: 1 finding');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`s2n-demo: 6 findings (1 high, 3 medium, 2 low) from 4 plugins on ${target.url}; report: /results/${REPORT_FILE}\n`);
    const reportPath = join(rootfs, 'results', REPORT_FILE);
    expect(statSync(reportPath).uid).toBe(SCANNER_UID);
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as ScanReport;
    expect(report.findings.map((f) => `${f.plugin}: ${f.title}`).sort()).toEqual([
      "reflected_param: parameter 'q' reflected unescaped",
      'directory_listing: directory listing enabled',
      'security_headers: missing Content-Security-Policy header',
      'security_headers: missing X-Content-Type-Options header',
      'security_headers: missing X-Frame-Options header',
      'server_banner: Server header discloses a version',
    ].sort());
    // The image's Python finds its own CA bundle (the deps layer), not the host's.
    const ca = await chroot(['--userspec=1000:1000', rootfs, 'python3', '-c', 'import ssl; print(len(ssl.create_default_context().get_ca_certs()) > 50)'], env);
    expect(ca.stdout.trim()).toBe('True');
    // prod has no shell.
    expect((await chroot([rootfs, '/bin/sh', '-c', 'true'], env)).code).not.toBe(0);
  });

  it.skipIf(!IS_ROOT)('gives dev a busybox shell', async () => {
    const rootfs = join(tempDir('s2n-demo-devfs-'), 'rootfs');
    mkdirSync(rootfs);
    for (const l of dev.manifest.layers) {
      const blob = join(rootfs, '..', 'layer.tgz');
      writeFileSync(blob, dev.blob(l.digest));
      execFileSync('tar', ['--numeric-owner', '-xzpf', blob, '-C', rootfs]);
    }
    const r = await chroot(['--userspec=1000:1000', rootfs, '/bin/sh', '-c', 'echo hi from $(id -u); ls /app'], { PATH: '/usr/bin:/bin' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hi from 1000\nbuiltin\nplugins-example\nrunner.py\n');
  });
});
