/**
 * Builds the demo scanner (bundles/demo-scanner) into OCI image archives,
 * without Docker or root:
 *
 *   node dist/scripts/build-demo-images.js [--out DIR] [--variant prod|dev|all] [--cache DIR]
 *
 * Layers, bottom first:
 *   1. base   Python from the host's apt (the dependency closure of
 *             pythonX.Y-minimal + libpythonX.Y-stdlib, docs dropped), the
 *             s2n user (1000:1000) and its home, /tmp
 *   2. deps   the CA bundle (from ca-certificates) and the s2n_sdk library in
 *             site-packages
 *   3. app    /app/runner.py and the built-in plugins, /plugins, /results
 *   4. debug  (dev only) busybox with a shell and tools
 * prod and dev share layers 1-3, so dev is prod plus a layer.
 *
 * Deterministic: sorted entries, fixed owners and mtimes ($SOURCE_DATE_EPOCH
 * or 2024-01-01), zlib gzip, fixed `created`: the same packages give the same
 * digests. .debs are cached in $XDG_CACHE_HOME/s2n-oci/debs, so a rebuild
 * works offline. The archive paths go to stdout, progress to stderr.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S2nError } from '../src/errors.js';
import type { Platform } from '../src/oci/types.js';
import { checkAptHost, debInfo, extractDeb, fetchDebs, hostDebArch, pythonVersionOf, resolveClosure } from '../src/s2n/debian-packages.js';
import { assembleImage, buildLayer, fsDir, fsFile, fsSymlink, LayerTree, writeOciArchive, type BuiltImage, type BuiltLayer } from '../src/s2n/image-builder.js';
import { isMainModule } from '../src/s2n/is-main.js';
import {
  DEMO_IMAGE_REPOSITORY,
  DEMO_SCANNER_VERSION,
  demoArchiveName,
  PLUGIN_DIR,
  RESULTS_DIR,
  SCANNER_DEFAULT_CMD,
  SCANNER_ENTRYPOINT,
  SCANNER_GID,
  SCANNER_HOME,
  SCANNER_UID,
  SCANNER_USER,
  SCANNER_VARIANTS,
  SCANNER_WORKDIR,
  scannerEnv,
  VARIANT_LABEL,
  type ScannerVariant,
} from '../src/s2n/scanner-contract.js';

interface Recipe {
  pythonVersionFrom: string;
  basePackages: string[];
  excludePackages: string[];
  caPackage: string;
  caCertificates: string;
  drop: string[];
  emptyDirs: string[];
  devPackages: string[];
  busyboxApplets: string[];
  labels: Record<string, string>;
}

export interface BuildDemoOptions {
  outDir: string;
  variants: readonly ScannerVariant[];
  /** Download cache for .debs. */
  cacheDir: string;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** Entry mtimes and `created`; default $SOURCE_DATE_EPOCH or 2024-01-01. */
  mtime?: Date;
}

export interface DemoArchive {
  variant: ScannerVariant;
  name: string;
  path: string;
  manifestDigest: string;
  /** Bytes of the blobs in the archive (its file is a little larger: tar headers). */
  blobBytes: number;
  layers: Array<{ digest: string; size: number; createdBy: string }>;
}

export interface DemoBuildResult {
  archives: DemoArchive[];
  python: string;
  packages: string[];
  downloaded: number;
}

const DEFAULT_MTIME = new Date('2024-01-01T00:00:00Z');

/** The nearest dir upward holding the s2n-oci package.json (works from scripts/ and dist/scripts/). */
export function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(d, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 's2n-oci') return d;
    const up = dirname(d);
    if (up === d) throw new S2nError('EINTERNAL', 'find package root: no s2n-oci package.json above the script', { hint: 'run the script from a clone of s2n-oci' });
    d = up;
  }
}

export function demoScannerDir(): string {
  return join(packageRoot(), 'bundles', 'demo-scanner');
}

export function defaultOutDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 's2n-oci', 'demo');
}

export function defaultDebCache(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 's2n-oci', 'debs');
}

function sourceDateEpoch(env: NodeJS.ProcessEnv): Date {
  const v = env.SOURCE_DATE_EPOCH;
  if (v !== undefined && /^\d+$/.test(v)) return new Date(Number(v) * 1000);
  return DEFAULT_MTIME;
}

const ARCH: Record<string, Omit<Platform, 'os'>> = {
  amd64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  armhf: { architecture: 'arm', variant: 'v7' },
  i386: { architecture: '386' },
  ppc64el: { architecture: 'ppc64le' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
};

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function passwd(): string {
  return [
    'root:x:0:0:root:/root:/bin/sh',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
    `${SCANNER_USER}:x:${SCANNER_UID}:${SCANNER_GID}:s2n scanner:${SCANNER_HOME}:/usr/sbin/nologin`,
    '',
  ].join('\n');
}

function group(): string {
  return ['root:x:0:', 'nogroup:x:65534:', `${SCANNER_USER}:x:${SCANNER_GID}:`, ''].join('\n');
}

/** Every regular file under `dir` (relative paths, sorted). */
async function listFiles(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of (await readdir(join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = rel === '' ? d.name : `${rel}/${d.name}`;
    if (d.name === '__pycache__' || d.name.endsWith('.pyc')) continue;
    if (d.isDirectory()) out.push(...(await listFiles(dir, r)));
    else if (d.isFile()) out.push(r);
  }
  return out;
}

/** Files of a source dir copied under `dest`, with fixed owner and modes (no host umask or uid leaks in). */
async function copyTree(tree: LayerTree, src: string, dest: string, uid: number, gid: number): Promise<void> {
  tree.add(fsDir(dest, 0o755, uid, gid));
  for (const f of await listFiles(src)) {
    const parts = f.split('/');
    for (let i = 1; i < parts.length; i++) tree.add(fsDir(`${dest}/${parts.slice(0, i).join('/')}`, 0o755, uid, gid));
    tree.add(fsFile(`${dest}/${f}`, await readFile(join(src, f)), 0o644, uid, gid));
  }
}

export async function buildDemoImages(opts: BuildDemoOptions): Promise<DemoBuildResult> {
  const log = opts.log ?? (() => {});
  const mtime = opts.mtime ?? sourceDateEpoch(process.env);
  const recipe = JSON.parse(await readFile(join(demoScannerDir(), 'recipe.json'), 'utf8')) as Recipe;
  const src = demoScannerDir();

  await checkAptHost();
  const debArch = await hostDebArch();
  const arch = ARCH[debArch];
  if (arch === undefined) throw new S2nError('EUSAGE', `build demo images: no OCI platform known for Debian architecture ${debArch}`, { hint: `build on one of: ${Object.keys(ARCH).join(', ')}` });
  const platform: Platform = { os: 'linux', ...arch };
  const V = await pythonVersionOf(recipe.pythonVersionFrom);
  const sub = (s: string): string => s.replaceAll('{V}', V);
  const drop = recipe.drop.map(sub);
  log(`python ${V} for ${debArch}: resolving ${recipe.basePackages.map(sub).join(' ')}`);

  const base = await resolveClosure(recipe.basePackages.map(sub), recipe.excludePackages);
  const wantDev = opts.variants.includes('dev');
  const all = [...base, recipe.caPackage, ...(wantDev ? recipe.devPackages : [])];
  const infos = await debInfo(all);
  log(`${base.length} packages in the base layer: ${base.join(' ')}`);
  const debs = await fetchDebs(infos, opts.cacheDir, log);
  const downloaded = [...debs.values()].filter((d) => d.downloaded).length;
  log(downloaded > 0 ? `downloaded ${downloaded} package(s) into ${opts.cacheDir}` : `all ${debs.size} packages from the cache ${opts.cacheDir}`);
  const deb = (name: string): string => {
    const d = debs.get(name);
    if (d === undefined) throw new S2nError('EINTERNAL', `build demo images: package ${name} was not fetched`);
    return d.path;
  };
  const build = (tree: LayerTree, createdBy: string): Promise<BuiltLayer> => buildLayer(tree, createdBy, { mtime });

  // 1. base
  const baseTree = new LayerTree();
  // dpkg-deb decompresses in its own process: a few at once, added in package order.
  for (const entries of await mapLimit(base, 4, (p) => extractDeb(deb(p), { drop }))) baseTree.addAll(entries);
  for (const d of recipe.emptyDirs) baseTree.add(fsDir(d));
  baseTree.add(fsDir('tmp', 0o1777));
  baseTree.add(fsDir('root', 0o700));
  baseTree.add(fsDir(SCANNER_HOME, 0o750, SCANNER_UID, SCANNER_GID));
  baseTree.add(fsFile('etc/passwd', passwd()));
  baseTree.add(fsFile('etc/group', group()));
  // What python3-minimal's package would add: the unversioned name.
  if (!baseTree.has('usr/bin/python3')) baseTree.add(fsSymlink('usr/bin/python3', `python${V}`));
  log(`base layer: ${baseTree.size} entries`);
  const baseLayer = await build(baseTree, `debian packages: ${base.join(' ')}`);

  // 2. deps: what update-ca-certificates would generate, and the scanner's library.
  const depsTree = new LayerTree();
  const certs = (await extractDeb(deb(recipe.caPackage), { only: [recipe.caCertificates] }))
    .filter((e) => e.type === 'file' && e.path.endsWith('.crt'))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  if (certs.length === 0) throw new S2nError('EINTERNAL', `build demo images: ${recipe.caPackage} has no certificates under ${recipe.caCertificates}`);
  const bundle = Buffer.concat(certs.map((c) => (c.type === 'file' ? Buffer.concat([c.content, c.content.at(-1) === 0x0a ? Buffer.alloc(0) : Buffer.from('\n')]) : Buffer.alloc(0))));
  depsTree.add(fsFile('etc/ssl/certs/ca-certificates.crt', bundle));
  // OpenSSL's default paths on Debian (OPENSSLDIR=/usr/lib/ssl), so ssl.create_default_context() finds the bundle.
  depsTree.add(fsSymlink('usr/lib/ssl/certs', '/etc/ssl/certs'));
  depsTree.add(fsSymlink('usr/lib/ssl/cert.pem', '/etc/ssl/certs/ca-certificates.crt'));
  await copyTree(depsTree, join(src, 'lib', 's2n_sdk'), `usr/local/lib/python${V}/dist-packages/s2n_sdk`, 0, 0);
  const depsLayer = await build(depsTree, `deps: CA bundle (${certs.length} certificates from ${recipe.caPackage}), s2n_sdk ${DEMO_SCANNER_VERSION}`);

  // 3. app
  const appTree = new LayerTree();
  await copyTree(appTree, join(src, 'app'), SCANNER_WORKDIR.slice(1), SCANNER_UID, SCANNER_GID);
  await copyTree(appTree, join(src, 'plugins-example'), `${SCANNER_WORKDIR.slice(1)}/plugins-example`, SCANNER_UID, SCANNER_GID);
  appTree.add(fsDir(PLUGIN_DIR.slice(1), 0o755));
  appTree.add(fsDir(RESULTS_DIR.slice(1), 0o775, SCANNER_UID, SCANNER_GID));
  const appLayer = await build(appTree, `app: s2n-demo ${DEMO_SCANNER_VERSION} (runner.py, built-in plugins)`);

  // 4. debug tools, dev only
  let devLayer: BuiltLayer | undefined;
  if (wantDev) {
    const devTree = new LayerTree();
    for (const p of recipe.devPackages) devTree.addAll(await extractDeb(deb(p), { drop }));
    const busybox = ['bin/busybox', 'usr/bin/busybox'].find((p) => devTree.has(p));
    if (busybox === undefined) throw new S2nError('EINTERNAL', 'build demo images: busybox-static has no bin/busybox');
    for (const a of recipe.busyboxApplets) {
      const path = `bin/${a}`;
      if (!devTree.has(path) && !baseTree.has(path)) devTree.add(fsSymlink(path, `/${busybox}`));
    }
    devLayer = await build(devTree, `debug tools: ${recipe.devPackages.join(' ')}`);
  }

  const archives: DemoArchive[] = [];
  for (const variant of opts.variants) {
    const layers = [baseLayer, depsLayer, appLayer, ...(variant === 'dev' && devLayer ? [devLayer] : [])];
    const name = `${DEMO_IMAGE_REPOSITORY}:${variant}`;
    const image: BuiltImage = assembleImage({
      name,
      platform,
      layers,
      created: mtime,
      author: 's2n-oci build-demo-images',
      config: {
        User: SCANNER_USER,
        Env: scannerEnv(variant),
        Entrypoint: [...SCANNER_ENTRYPOINT],
        Cmd: [...SCANNER_DEFAULT_CMD],
        WorkingDir: SCANNER_WORKDIR,
        Volumes: { [RESULTS_DIR]: {} },
        Labels: { ...recipe.labels, 'org.opencontainers.image.version': DEMO_SCANNER_VERSION, [VARIANT_LABEL]: variant },
      },
      annotations: { 'org.opencontainers.image.created': mtime.toISOString(), 'org.opencontainers.image.version': DEMO_SCANNER_VERSION },
    });
    const path = join(opts.outDir, demoArchiveName(variant));
    const blobBytes = await writeOciArchive(path, [image], mtime);
    log(`wrote ${path} (${name}, ${image.manifestDigest}, ${(blobBytes / 1e6).toFixed(1)} MB)`);
    archives.push({ variant, name, path, manifestDigest: image.manifestDigest, blobBytes, layers: layers.map((l) => ({ digest: l.digest, size: l.size, createdBy: l.createdBy })) });
  }
  return { archives, python: V, packages: base, downloaded };
}

const USAGE = 'usage: build-demo-images [--out DIR] [--variant prod|dev|all] [--cache DIR]';

function parseArgs(argv: string[]): BuildDemoOptions | 'help' {
  let outDir = defaultOutDir();
  let cacheDir = defaultDebCache();
  let variants: readonly ScannerVariant[] = SCANNER_VARIANTS;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '-h' || a === '--help') return 'help';
    if (v === undefined) throw new S2nError('EUSAGE', `build demo images: ${a ?? ''} needs a value`, { hint: USAGE });
    if (a === '--out' || a === '-o') outDir = resolve(v);
    else if (a === '--cache') cacheDir = resolve(v);
    else if (a === '--variant') {
      if (v === 'all') variants = SCANNER_VARIANTS;
      else if (v === 'prod' || v === 'dev') variants = [v];
      else throw new S2nError('EUSAGE', `build demo images: unknown variant ${v}`, { hint: USAGE });
    } else throw new S2nError('EUSAGE', `build demo images: unknown argument ${a ?? ''}`, { hint: USAGE });
    i++;
  }
  return { outDir, cacheDir, variants };
}

async function main(): Promise<void> {
  const started = Date.now();
  try {
    const opts = parseArgs(process.argv.slice(2));
    if (opts === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    const r = await buildDemoImages({ ...opts, log: (l) => process.stderr.write(`build-demo-images: ${l}\n`) });
    process.stderr.write(`build-demo-images: done in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    for (const a of r.archives) process.stdout.write(`${a.path}\n`);
  } catch (e) {
    if (e instanceof S2nError) {
      process.stderr.write(`build-demo-images: ${e.message}\n${e.hint !== undefined ? `hint: ${e.hint}\n` : ''}`);
      process.exitCode = e.code === 'EUSAGE' ? 2 : 1;
    } else {
      process.stderr.write(`build-demo-images: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    }
  }
}

if (isMainModule(import.meta.url)) void main();
