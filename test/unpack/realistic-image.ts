/**
 * A realistic multi-layer image for the umoci differential test and the
 * unpack benchmark, written as an OCI layout (tag `latest`) and cached under
 * $S2N_TEST_CACHE (default <tmp>/s2n-test-cache), keyed by a fingerprint of
 * the host trees it copies:
 *
 *   1. host trees (/usr/share/perl, /usr/lib/python3, /usr/lib/python3.11) re-tarred, owned by root
 *   2. /home/app owned by 1000:1000: files, hard links, symlinks, a setuid file, a setgid dir, a 0700 dir;
 *      /etc/passwd; files replaced in layer 1's trees
 *   3. whiteouts of a file and a directory of layer 1, an opaque directory, a file whited-out in /home/app
 *
 * No vitest import: the benchmark uses it too.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { HashTap } from '../helpers/images.js';

export const HOST_TREES = ['/usr/share/perl', '/usr/lib/python3', '/usr/lib/python3.11'];

interface Entry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  linkname?: string;
  /** Host file to copy (streamed), or inline content. */
  source?: string;
  content?: Buffer;
  size?: number;
}

const MTIME = new Date('2024-01-01T00:00:00Z');


/** Layer 1's entries: every dir, file and symlink of the trees, in sorted order, with host hard links as tar links. */
function hostEntries(trees: readonly string[]): Entry[] {
  const out: Entry[] = [];
  const seen = new Map<string, string>();
  const add = (path: string, st: Stats): void => {
    const name = path.slice(1);
    const base = { name, mode: st.mode & 0o7777, uid: 0, gid: 0, mtime: new Date(Math.floor(st.mtimeMs / 1000) * 1000) };
    if (st.isDirectory()) out.push({ ...base, type: 'directory' });
    else if (st.isSymbolicLink()) out.push({ ...base, type: 'symlink', linkname: readlinkSync(path) });
    else if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1 ? seen.get(key) : undefined;
      if (first !== undefined) out.push({ ...base, type: 'link', linkname: first });
      else {
        if (st.nlink > 1) seen.set(key, name);
        out.push({ ...base, type: 'file', source: path, size: st.size });
      }
    }
  };
  const walk = (dir: string): void => {
    add(dir, lstatSync(dir));
    for (const n of readdirSync(dir).sort()) {
      const p = join(dir, n);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else add(p, st);
    }
  };
  // Parents first, as image builders write them.
  const parents = new Set<string>();
  for (const t of trees) {
    const parts = t.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) parents.add(`/${parts.slice(0, i).join('/')}`);
  }
  for (const p of [...parents].sort()) out.push({ name: p.slice(1), type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: MTIME });
  for (const t of trees) if (existsSync(t)) walk(t);
  return out;
}

function fingerprint(entries: Entry[]): string {
  const h = createHash('sha256');
  h.update('v2\n');
  for (const e of entries) h.update(`${e.name}\0${e.type}\0${e.mode}\0${e.size ?? ''}\0${e.mtime.getTime()}\0${e.linkname ?? ''}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Deterministic text-ish content of `n` bytes. */
function content(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  let block = createHash('sha256').update(seed).digest();
  for (let i = 0; i < n; i += 64) {
    const hex = Buffer.from(block.toString('hex'));
    hex.copy(out, i, 0, Math.min(64, n - i));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

function appLayer(perlFile: string | undefined): Entry[] {
  const app = { uid: 1000, gid: 1000, mtime: MTIME };
  const f = (name: string, data: Buffer, mode = 0o644, o: Partial<Entry> = {}): Entry => ({ name, type: 'file', mode, ...app, content: data, size: data.length, ...o });
  const d = (name: string, mode = 0o755, o: Partial<Entry> = {}): Entry => ({ name, type: 'directory', mode, ...app, ...o });
  const out: Entry[] = [
    { name: 'etc', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: MTIME },
    f('etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n'), 0o644, { uid: 0, gid: 0 }),
    f('etc/group', Buffer.from('root:x:0:\napp:x:1000:\n'), 0o644, { uid: 0, gid: 0 }),
    { name: 'home', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: MTIME },
    d('home/app', 0o750),
    d('home/app/.ssh', 0o700),
    f('home/app/.ssh/authorized_keys', content('keys', 400), 0o600),
    d('home/app/shared', 0o2775),
    f('home/app/bin-suid', content('suid', 5000), 0o4755),
    f('home/app/bin-sgid', content('sgid', 5000), 0o2755, { gid: 50 }),
    f('home/app/readonly', content('ro', 100), 0o444),
    { name: 'home/app/link-abs', type: 'symlink', mode: 0o777, ...app, linkname: '/usr/share/perl' },
    { name: 'home/app/link-rel', type: 'symlink', mode: 0o777, ...app, linkname: '../app/bin-suid' },
    { name: 'home/app/link-dangling', type: 'symlink', mode: 0o777, ...app, linkname: '/nonexistent/target' },
    { name: 'home/app/link-up', type: 'symlink', mode: 0o777, ...app, linkname: '../../../../etc/passwd' },
  ];
  for (let i = 0; i < 40; i++) {
    const dir = `home/app/data/d${String(i).padStart(2, '0')}`;
    out.push(d(dir, i % 7 === 0 ? 0o700 : 0o755, i % 5 === 0 ? { uid: 1001, gid: 1001 } : {}));
    for (let j = 0; j < 25; j++) out.push(f(`${dir}/f${j}.txt`, content(`${i}/${j}`, (i * 977 + j * 131) % 20000), j % 3 === 0 ? 0o600 : 0o644, j % 4 === 0 ? { uid: 1000 + (j % 3), gid: 100 } : {}));
  }
  out.splice(out.findIndex((e) => e.name === 'home/app/data/d00'), 0, d('home/app/data'));
  out.push({ name: 'home/app/hard-to-suid', type: 'link', mode: 0o4755, ...app, linkname: 'home/app/bin-suid' });
  out.push({ name: 'home/app/data/hard-cross', type: 'link', mode: 0o644, ...app, linkname: 'home/app/data/d01/f1.txt' });
  // A file of layer 1 replaced (content and owner), and a hard link to a file of layer 1.
  if (perlFile !== undefined) {
    out.push(f(perlFile, Buffer.from('# replaced by layer 2\n'), 0o640, { uid: 1000, gid: 1000 }));
    out.push({ name: 'home/app/perl-link', type: 'link', mode: 0o640, ...app, linkname: perlFile });
  }
  return out;
}

function whiteoutLayer(layer1: Entry[]): Entry[] {
  const names = new Set(layer1.map((e) => e.name));
  const pick = (re: RegExp, type: Entry['type']): string | undefined => layer1.find((e) => e.type === type && re.test(e.name))?.name;
  const wh = (path: string): Entry => {
    const i = path.lastIndexOf('/');
    return { name: `${path.slice(0, i + 1)}.wh.${path.slice(i + 1)}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: MTIME, content: Buffer.alloc(0), size: 0 };
  };
  const out: Entry[] = [];
  const goneDir = pick(/^usr\/lib\/python3\.11\/[a-z]+$/, 'directory') ;
  const goneFile = pick(/^usr\/share\/perl\/[^/]+\/[^/]+\.pm$/, 'file');
  const opaque = pick(/^usr\/lib\/python3\/dist-packages\/[^/]+$/, 'directory');
  if (goneDir) out.push(wh(goneDir));
  if (goneFile) out.push(wh(goneFile));
  if (opaque) {
    out.push({ name: opaque, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: MTIME });
    out.push({ name: `${opaque}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: MTIME, content: Buffer.alloc(0), size: 0 });
    out.push({ name: `${opaque}/only-this.txt`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: MTIME, content: Buffer.from('opaque\n'), size: 7 });
  }
  out.push(wh('home/app/data/d03/f3.txt'));
  out.push(wh('home/app/data/d39'));
  if (!names.has('usr')) throw new Error('host trees missing');
  return out;
}

async function writeLayer(entries: Entry[], blobDir: string): Promise<{ digest: string; size: number; diffId: string }> {
  const pack = tar.pack();
  const diff = new HashTap();
  const blob = new HashTap();
  const tmp = join(blobDir, `.tmp-${process.pid}-${Date.now()}`);
  const written = pipeline([Readable.from(pack as AsyncIterable<Buffer>), diff, createGzip(), blob, createWriteStream(tmp)]);
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const header: Partial<tar.Header> & { name: string } = { name: e.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
      if (e.linkname !== undefined) header.linkname = e.linkname;
      if (e.type === 'file') header.size = e.size ?? e.content?.length ?? 0;
      const ws = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      if (e.type !== 'file') return;
      if (e.content) {
        ws.end(e.content);
        return;
      }
      const rs = createReadStream(e.source!);
      rs.on('data', (c) => {
        if (!ws.write(c)) {
          rs.pause();
          ws.once('drain', () => rs.resume());
        }
      });
      rs.on('end', () => ws.end(undefined));
      rs.on('error', reject);
    });
  }
  pack.finalize();
  await written;
  const digest = `sha256:${blob.hash.digest('hex')}`;
  await rename(tmp, join(blobDir, digest.slice(7)));
  return { digest, size: blob.bytes, diffId: `sha256:${diff.hash.digest('hex')}` };
}

export interface RealisticImage {
  /** OCI layout dir, tagged `latest`. */
  layoutDir: string;
  manifestDigest: string;
  layers: Array<{ digest: string; size: number; diffId: string; path: string }>;
  /** Uncompressed bytes of all layers. */
  uncompressedBytes: number;
  entries: number;
}

/** Builds (or reuses) the image; see the module comment. */
export async function realisticImage(cacheRoot = process.env.S2N_TEST_CACHE ?? join(tmpdir(), 's2n-test-cache')): Promise<RealisticImage> {
  const layer1 = hostEntries(HOST_TREES);
  const dir = join(cacheRoot, `realistic-${fingerprint(layer1)}`);
  const done = join(dir, 'realistic.json');
  try {
    return JSON.parse(await readFile(done, 'utf8')) as RealisticImage;
  } catch {
    /* build it */
  }
  const blobDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true, mode: 0o755 });
  const perlFile = layer1.find((e) => e.type === 'file' && /^usr\/share\/perl\/.*\.pl$/.test(e.name))?.name;
  const all = [layer1, appLayer(perlFile), whiteoutLayer(layer1)];
  const layers: RealisticImage['layers'] = [];
  let uncompressedBytes = 0;
  for (const entries of all) {
    const l = await writeLayer(entries, blobDir);
    layers.push({ ...l, path: join(blobDir, l.digest.slice(7)) });
  }
  for (const e of all.flat()) uncompressedBytes += e.size ?? 0;
  const put = async (b: Buffer): Promise<string> => {
    const d = `sha256:${createHash('sha256').update(b).digest('hex')}`;
    await writeFile(join(blobDir, d.slice(7)), b);
    return d;
  };
  const config = Buffer.from(
    JSON.stringify({
      created: MTIME.toISOString(),
      architecture: 'amd64',
      os: 'linux',
      config: { User: '1000:1000', WorkingDir: '/home/app', Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = await put(manifest);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
    }),
  );
  const image: RealisticImage = { layoutDir: dir, manifestDigest, layers, uncompressedBytes, entries: all.reduce((a, l) => a + l.length, 0) };
  await writeFile(done, JSON.stringify(image));
  return image;
}
