/**
 * Debian packages as image content, without root and without dpkg: apt
 * resolves a dependency closure and downloads the .debs into a cache (checked
 * against the SHA256 apt's lists give), and `dpkg-deb --fsys-tarfile` streams
 * each package's files, which become layer entries. Maintainer scripts never
 * run: the few things they would generate (a CA bundle, /usr/bin/python3) the
 * image recipe writes itself.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import * as tar from 'tar-stream';
import { S2nError } from '../errors.js';
import { normalizePath, type FsEntry } from './image-builder.js';

const run = promisify(execFile);

const APT_HINT = 'build the demo images on Debian or Ubuntu (they need apt-cache, apt-get and dpkg-deb), or load a prebuilt archive with `s2n-oci load -i FILE`';

async function tool(cmd: string, args: string[], what: string, cwd?: string): Promise<string> {
  try {
    const r = await run(cmd, args, { maxBuffer: 64 << 20, encoding: 'utf8', ...(cwd !== undefined ? { cwd } : {}), env: { ...process.env, LC_ALL: 'C' } });
    return r.stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw new S2nError('EUSAGE', `${what}: ${cmd} not found: this host has no apt`, { hint: APT_HINT, cause: e });
    }
    const detail = (err.stderr ?? err.message).trim().split('\n').filter((l) => !/^W: /.test(l)).slice(-3).join('; ');
    throw new S2nError('EUSAGE', `${what}: ${cmd} failed: ${detail}`, {
      hint: 'run `apt-get update` (as root) so apt knows the current package versions, and check the network or proxy',
      cause: e,
      context: { cmd, args },
    });
  }
}

/** Fails with one clear line when apt or dpkg-deb is missing. */
export async function checkAptHost(): Promise<void> {
  await tool('apt-cache', ['--version'], 'check host');
  await tool('apt-get', ['--version'], 'check host');
  await tool('dpkg-deb', ['--version'], 'check host');
}

export async function hostDebArch(): Promise<string> {
  return (await tool('dpkg', ['--print-architecture'], 'find host architecture')).trim();
}

/** `3.11` from the `pythonX.Y-minimal` that `pkg` (python3-minimal) depends on: the release's default Python. */
export async function pythonVersionOf(pkg: string): Promise<string> {
  const out = await tool('apt-cache', ['depends', pkg], 'find python version');
  const m = /Depends: python(3\.\d+)-minimal\b/.exec(out);
  if (!m?.[1]) throw new S2nError('EUSAGE', `find python version: ${pkg} depends on no python3.X-minimal`, { hint: 'build on a Debian or Ubuntu release that packages Python 3' });
  return m[1];
}

/** `Depends`-style dependency groups of each package: each group a list of alternatives. */
export function parseDepends(out: string): Map<string, string[][]> {
  const deps = new Map<string, string[][]>();
  let current: string[][] | undefined;
  let alt: string[] | undefined;
  let lastWasVirtual = false;
  for (const line of out.split('\n')) {
    if (line === '') continue;
    if (!line.startsWith(' ')) {
      current = [];
      alt = undefined;
      deps.set(line.trim(), current);
      continue;
    }
    const m = /^ ([ |])(PreDepends|Depends): (.+)$/.exec(line);
    if (m && current) {
      const name = (m[3] ?? '').trim();
      const isVirtual = name.startsWith('<');
      lastWasVirtual = isVirtual;
      if (alt === undefined) {
        alt = [];
        current.push(alt);
      }
      if (!isVirtual) alt.push(name.replace(/:any$/, ''));
      // `|Depends` continues an alternative group with the next line.
      if (m[1] !== '|') alt = undefined;
      continue;
    }
    // Providers of a virtual package, indented under it: alternatives of the group it is in.
    if (/^    \S/.test(line) && lastWasVirtual && current) {
      const group = current[current.length - 1];
      group?.push(line.trim());
    }
  }
  return deps;
}

/**
 * The packages `roots` need, following Depends and PreDepends (first
 * alternative that is not excluded), never entering `exclude`: packages
 * whose only use is to run maintainer scripts (dpkg, perl, debconf).
 */
export async function resolveClosure(roots: string[], exclude: readonly string[]): Promise<string[]> {
  const excluded = new Set(exclude);
  // One recursive query (each apt-cache call costs most of a second), walked here: the
  // recursion follows every alternative, we keep only the first one not excluded.
  const out = await tool(
    'apt-cache',
    ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...new Set(roots)],
    'resolve packages',
  );
  return walkClosure(parseDepends(out), roots, excluded);
}

/** The closure of `roots` over `deps`, taking from each group its first alternative not excluded. */
export function walkClosure(deps: Map<string, string[][]>, roots: readonly string[], excluded: ReadonlySet<string>): string[] {
  const seen = new Set<string>();
  const todo = [...new Set(roots)];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    if (seen.has(p)) continue;
    const groups = deps.get(p);
    if (groups === undefined) throw new S2nError('EUSAGE', `resolve packages: apt knows no package ${p}`, { hint: 'run `apt-get update`; the demo image needs a Debian or Ubuntu release with Python 3' });
    seen.add(p);
    for (const group of groups) {
      const pick = group.find((n) => !excluded.has(n));
      if (pick !== undefined && !seen.has(pick)) todo.push(pick);
    }
  }
  return [...seen].sort();
}

export interface DebInfo {
  name: string;
  version: string;
  arch: string;
  /** Pool file name (`libc6_2.36-9+deb12u10_amd64.deb`), the cache file name. */
  file: string;
  sha256: string;
  size: number;
}

/** The candidate version of each package, as apt would install it. */
export async function debInfo(names: string[]): Promise<DebInfo[]> {
  const out = await tool('apt-cache', ['show', '--no-all-versions', ...names], 'look up packages');
  const infos: DebInfo[] = [];
  for (const stanza of out.split(/\n\n+/)) {
    const f = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const m = /^([A-Za-z0-9-]+): (.*)$/.exec(line);
      if (m) f.set(m[1] ?? '', m[2] ?? '');
    }
    const name = f.get('Package');
    const filename = f.get('Filename');
    const sha = f.get('SHA256');
    if (name === undefined || filename === undefined || sha === undefined) continue;
    infos.push({ name, version: f.get('Version') ?? '', arch: f.get('Architecture') ?? '', file: basename(filename), sha256: sha, size: Number(f.get('Size') ?? 0) });
  }
  for (const n of names) {
    if (!infos.some((i) => i.name === n)) throw new S2nError('EUSAGE', `look up packages: apt shows no candidate for ${n}`, { hint: 'run `apt-get update`' });
  }
  return infos.sort((a, b) => (a.name < b.name ? -1 : 1));
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

export interface FetchReport {
  path: string;
  downloaded: boolean;
}

/**
 * `cacheDir/<pool file name>` for each package, downloading those missing
 * with `apt-get download` (works unprivileged). A cached file whose hash is
 * not the one apt expects is downloaded again.
 */
export async function fetchDebs(infos: DebInfo[], cacheDir: string, log: (line: string) => void): Promise<Map<string, FetchReport>> {
  await mkdir(cacheDir, { recursive: true });
  const result = new Map<string, FetchReport>();
  const missing: DebInfo[] = [];
  for (const i of infos) {
    const p = join(cacheDir, i.file);
    if (existsSync(p) && (await fileSha256(p)) === i.sha256) result.set(i.name, { path: p, downloaded: false });
    else missing.push(i);
  }
  if (missing.length > 0) {
    log(`downloading ${missing.length} package(s) with apt-get download: ${missing.map((i) => i.name).join(' ')}`);
    const tmp = await mkdtemp(join(cacheDir, '.download-'));
    try {
      await tool('apt-get', ['download', '-q', ...missing.map((i) => `${i.name}=${i.version}`)], 'download packages', tmp);
      const got = await readdir(tmp);
      for (const i of missing) {
        // apt-get names the file name_version_arch.deb with the epoch's `:` as %3a; match on name and arch.
        const f = got.find((g) => g.startsWith(`${i.name}_`) && g.endsWith(`_${i.arch}.deb`));
        if (f === undefined) throw new S2nError('EUSAGE', `download packages: apt-get download left no file for ${i.name}`, { hint: 'run `apt-get update` and try again' });
        const actual = await fileSha256(join(tmp, f));
        if (actual !== i.sha256) {
          throw new S2nError('EDIGEST', `download packages: ${f} has sha256 ${actual}, apt expects ${i.sha256}`, { hint: 'run `apt-get update`; a proxy may be serving stale files' });
        }
        const dest = join(cacheDir, i.file);
        await rename(join(tmp, f), dest);
        result.set(i.name, { path: dest, downloaded: true });
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  return result;
}

export interface ExtractOptions {
  /** Paths (relative, no leading /) under which nothing is kept: docs, man pages, locales. `*` matches one path segment. */
  drop?: readonly string[];
  /** Keep only paths under these prefixes (e.g. the CA certificates of ca-certificates). */
  only?: readonly string[];
}

const patterns = new Map<string, RegExp>();

/** True when `path` is `prefix` or below it; a `*` in the prefix matches one segment. */
function under(path: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => {
    if (!p.includes('*')) return path === p || path.startsWith(`${p}/`);
    let re = patterns.get(p);
    if (re === undefined) {
      re = new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]+')}(/|$)`);
      patterns.set(p, re);
    }
    return re.test(path);
  });
}

/**
 * The files of a .deb as layer entries, from `dpkg-deb --fsys-tarfile`.
 * Hard links become copies of their target (an image layer may not order
 * them after their target once entries are sorted).
 */
export async function extractDeb(debPath: string, opts: ExtractOptions = {}): Promise<FsEntry[]> {
  const child = spawn('dpkg-deb', ['--fsys-tarfile', debPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const extract = tar.extract();
  child.stdout.pipe(extract);
  const entries: FsEntry[] = [];
  const files = new Map<string, Buffer>();
  for await (const e of extract) {
    const h = e.header;
    const path = normalizePath(h.name);
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    if (path === undefined) continue;
    if (opts.drop && under(path, opts.drop)) continue;
    if (opts.only && !under(path, opts.only) && !(h.type === 'directory' && opts.only.some((p) => p.startsWith(`${path}/`)))) continue;
    const common = { path, mode: (h.mode ?? 0o644) & 0o7777, uid: h.uid ?? 0, gid: h.gid ?? 0 };
    switch (h.type) {
      case 'file': {
        const content = Buffer.concat(chunks);
        files.set(path, content);
        entries.push({ ...common, type: 'file', content });
        break;
      }
      case 'directory':
        entries.push({ ...common, type: 'dir' });
        break;
      case 'symlink':
        entries.push({ ...common, type: 'symlink', target: h.linkname ?? '' });
        break;
      case 'link': {
        const target = files.get(normalizePath(h.linkname ?? '') ?? '');
        if (target === undefined) throw new S2nError('EARCHIVE', `extract ${basename(debPath)}: hard link ${path} to a file not seen before`, { hint: 'the package is unusual; report it' });
        entries.push({ ...common, type: 'file', content: target });
        break;
      }
      default:
        throw new S2nError('EARCHIVE', `extract ${basename(debPath)}: unsupported entry type ${h.type} at ${path}`, { hint: 'the package is unusual; report it' });
    }
  }
  const code = await exited;
  if (code !== 0) {
    throw new S2nError('EARCHIVE', `extract ${basename(debPath)}: dpkg-deb exited ${code}: ${stderr.trim()}`, { hint: 'delete the file from the download cache and build again' });
  }
  return entries;
}
