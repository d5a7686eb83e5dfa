/** Shared helpers for the unpack tests: a rootfs beside a planted file, tree snapshots, hand-made tar blocks. */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { applyLayer, type ApplyLayerOptions, type ApplyLayerResult, type UnpackWarning } from '../../src/unpack/index.js';
import { buildTar, type LayerEntry } from '../helpers/images.js';
import { makeTempDir } from '../helpers/tmp.js';

export interface Env {
  base: string;
  root: string;
  planted: string;
  warnings: UnpackWarning[];
}

export const PLANTED = 'planted, do not touch';

export async function makeEnv(): Promise<Env> {
  const base = await makeTempDir('s2n-unpack-');
  const root = join(base, 'rootfs');
  await mkdir(root);
  const planted = join(base, 'planted');
  await writeFile(planted, PLANTED);
  return { base, root, planted, warnings: [] };
}

export type Layer = LayerEntry[] | Buffer;

export async function tarOf(l: Layer): Promise<Buffer> {
  return Buffer.isBuffer(l) ? l : buildTar(l);
}

export function zstd(b: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c'], { input: b });
}

export async function apply(env: Env, layer: Layer, opts: Partial<ApplyLayerOptions> & { compress?: 'gzip' | 'zstd' | 'none' } = {}): Promise<ApplyLayerResult> {
  const raw = await tarOf(layer);
  const blob = opts.compress === 'gzip' ? gzipSync(raw) : opts.compress === 'zstd' ? zstd(raw) : raw;
  return applyLayer(env.root, Readable.from([blob]), {
    ownership: 'real',
    onWarning: (w) => env.warnings.push(w),
    ...opts,
  });
}

export async function applyAll(env: Env, layers: Layer[]): Promise<void> {
  for (const l of layers) await apply(env, l);
}

export interface Node {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
}

/** Every path under `dir` (relative), with type, mode, owner, content hash, link target. */
export async function snapshot(dir: string, skip: ReadonlySet<string> = new Set()): Promise<Record<string, Node>> {
  const out: Record<string, Node> = {};
  async function walk(rel: string): Promise<void> {
    const names = await readdir(join(dir, rel));
    for (const n of names.sort()) {
      const r = rel ? `${rel}/${n}` : n;
      if (skip.has(r)) continue;
      const p = join(dir, r);
      const st = await lstat(p);
      const node: Node = { type: 'other', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (st.isSymbolicLink()) {
        node.type = 'symlink';
        node.target = await readlink(p);
      } else if (st.isDirectory()) {
        node.type = 'dir';
      } else if (st.isFile()) {
        node.type = 'file';
        node.size = st.size;
        node.sha256 = createHash('sha256').update(await readFile(p)).digest('hex');
      }
      out[r] = node;
      if (node.type === 'dir') await walk(r);
    }
  }
  await walk('');
  return out;
}

/** What is beside the rootfs: must not change. */
export function outside(env: Env): Promise<Record<string, Node>> {
  return snapshot(env.base, new Set(['rootfs']));
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A raw ustar header block; `size` may be a Buffer for a hand-made size field. */
export function rawHeader(h: { name: string | Buffer; typeflag: string; size: number | Buffer; linkname?: string }): Buffer {
  const b = Buffer.alloc(512);
  (Buffer.isBuffer(h.name) ? h.name : Buffer.from(h.name)).copy(b, 0, 0, 100);
  b.write(octal(0o644, 8), 100, 'latin1');
  b.write(octal(0, 8), 108, 'latin1');
  b.write(octal(0, 8), 116, 'latin1');
  if (Buffer.isBuffer(h.size)) h.size.copy(b, 124, 0, 12);
  else b.write(octal(h.size, 12), 124, 'latin1');
  b.write(octal(1704067200, 12), 136, 'latin1');
  b.write(h.typeflag, 156, 'latin1');
  if (h.linkname) b.write(h.linkname, 157, 'utf8');
  b.write('ustar\0', 257, 'latin1');
  b.write('00', 263, 'latin1');
  b.fill(32, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

export function padBlock(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

export function paxRecords(rec: Record<string, string>): Buffer {
  let s = '';
  for (const [k, v] of Object.entries(rec)) {
    const body = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(body) + 1;
    while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
    s += `${len}${body}`;
  }
  return Buffer.from(s);
}

export const END = Buffer.alloc(1024);

/** A tar's entries without its end-of-archive marker (tar-stream writes exactly two zero blocks). */
export function withoutEnd(tar: Buffer): Buffer {
  return tar.subarray(0, tar.length - 1024);
}
