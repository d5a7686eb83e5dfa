/**
 * Assembles OCI images from file lists, without Docker: a layer is a sorted,
 * de-duplicated list of entries written as a tar with fixed mtimes and owners
 * and gzipped by zlib (whose header has no timestamp), so the same inputs give
 * the same bytes and the same manifest digest on every machine. Images are
 * written as one oci-archive (an OCI image layout in a tar).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { sha256Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { Annotation, type ContainerConfig, type Descriptor, type Digest, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from '../oci/types.js';
import { CONTAINERD_IMAGE_NAME, LAYOUT_VERSION } from '../sources/oci-layout.js';

interface EntryCommon {
  /** Relative, no leading `./` or `/`, no trailing `/`. */
  path: string;
  mode: number;
  uid: number;
  gid: number;
}

export type FsEntry =
  | (EntryCommon & { type: 'file'; content: Buffer })
  | (EntryCommon & { type: 'dir' })
  | (EntryCommon & { type: 'symlink'; target: string });

/** `usr/bin/x` from `./usr/bin/x/`, `/usr/bin/x`; undefined for the root itself. */
export function normalizePath(p: string): string | undefined {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new Error(`layer entry ${JSON.stringify(p)} contains ..`);
  return parts.length === 0 ? undefined : parts.join('/');
}

export const fsFile = (path: string, content: string | Buffer, mode = 0o644, uid = 0, gid = 0): FsEntry => ({
  type: 'file',
  path,
  content: Buffer.isBuffer(content) ? content : Buffer.from(content),
  mode,
  uid,
  gid,
});
export const fsDir = (path: string, mode = 0o755, uid = 0, gid = 0): FsEntry => ({ type: 'dir', path, mode, uid, gid });
export const fsSymlink = (path: string, target: string): FsEntry => ({ type: 'symlink', path, target, mode: 0o777, uid: 0, gid: 0 });

/**
 * The entries of one layer, keyed by path: a later entry for a path replaces
 * an earlier one, except that a directory never replaces a directory (the
 * first one's mode and owner win, as when dpkg unpacks packages that share
 * `usr/lib`). Missing parent directories are added as root 0755.
 */
export class LayerTree {
  private readonly entries = new Map<string, FsEntry>();

  add(e: FsEntry): void {
    const path = normalizePath(e.path);
    if (path === undefined) return;
    const old = this.entries.get(path);
    if (old?.type === 'dir' && e.type === 'dir') return;
    this.entries.set(path, { ...e, path });
  }

  addAll(es: Iterable<FsEntry>): void {
    for (const e of es) this.add(e);
  }

  has(path: string): boolean {
    const p = normalizePath(path);
    return p !== undefined && this.entries.has(p);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Sorted by path, parents first, with implied parent directories. */
  sorted(): FsEntry[] {
    const all = new Map(this.entries);
    for (const p of this.entries.keys()) {
      for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) {
        const parent = p.slice(0, i);
        if (!all.has(parent)) all.set(parent, fsDir(parent));
      }
    }
    // Compare by path components so `usr/bin` sorts before `usr-x` and `usr/bin/a` (a parent always first).
    const key = (p: string): string => p.split('/').join('\u0000');
    return [...all.values()].sort((a, b) => {
      const ka = key(a.path);
      const kb = key(b.path);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }
}

export interface BuiltLayer {
  mediaType: string;
  digest: Digest;
  diffId: Digest;
  size: number;
  /** Uncompressed tar size. */
  tarSize: number;
  blob: Buffer;
  /** Shown in the config's history. */
  createdBy: string;
}

export interface BuildOptions {
  /** Every entry's mtime (and the config's `created`). */
  mtime: Date;
  /** zlib level (default 6: level 9 is 4x slower for 0.4% less); deterministic for a given zlib build and level. */
  gzipLevel?: number;
}

async function packTar(entries: FsEntry[], mtime: Date): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const base = { name: e.type === 'dir' ? `${e.path}/` : e.path, mode: e.mode, uid: e.uid, gid: e.gid, uname: '', gname: '', mtime };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (e.type === 'file') pack.entry({ ...base, type: 'file', size: e.content.length }, e.content, done);
      else if (e.type === 'dir') pack.entry({ ...base, type: 'directory' }, done);
      else pack.entry({ ...base, type: 'symlink', linkname: e.target }, done);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

export async function buildLayer(tree: LayerTree, createdBy: string, opts: BuildOptions): Promise<BuiltLayer> {
  const raw = await packTar(tree.sorted(), opts.mtime);
  const blob = gzipSync(raw, { level: opts.gzipLevel ?? 6 });
  return { mediaType: MediaType.ociLayerGzip, digest: sha256Digest(blob), diffId: sha256Digest(raw), size: blob.length, tarSize: raw.length, blob, createdBy };
}

export interface ImageSpec {
  /** Full reference the archive names the image by (`localhost/s2n-demo:prod`). */
  name: string;
  platform: Platform;
  layers: BuiltLayer[];
  config: ContainerConfig;
  /** Manifest annotations. */
  annotations?: Record<string, string>;
  created: Date;
  author?: string;
}

export interface BuiltImage {
  name: string;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: Digest;
  config: ImageConfig;
  configBytes: Buffer;
  configDigest: Digest;
  layers: BuiltLayer[];
}

export function assembleImage(spec: ImageSpec): BuiltImage {
  const created = spec.created.toISOString();
  const config: ImageConfig = {
    created,
    ...(spec.author !== undefined ? { author: spec.author } : {}),
    architecture: spec.platform.architecture,
    os: spec.platform.os,
    ...(spec.platform.variant !== undefined ? { variant: spec.platform.variant } : {}),
    config: spec.config,
    rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.diffId) },
    history: spec.layers.map((l) => ({ created, created_by: l.createdBy })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = sha256Digest(configBytes);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
    layers: spec.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { name: spec.name, manifest, manifestBytes, manifestDigest: sha256Digest(manifestBytes), config, configBytes, configDigest, layers: spec.layers };
}

function blobPath(d: Digest): string {
  const colon = d.indexOf(':');
  return `blobs/${d.slice(0, colon)}/${d.slice(colon + 1)}`;
}

/** The index.json of an archive holding `images`, each named as containerd and skopeo look them up. */
export function archiveIndex(images: BuiltImage[]): ImageIndex {
  const manifests: Descriptor[] = images.map((i) => ({
    mediaType: MediaType.ociManifest,
    digest: i.manifestDigest,
    size: i.manifestBytes.length,
    annotations: { [CONTAINERD_IMAGE_NAME]: i.name, [Annotation.refName]: i.name },
  }));
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
}

/**
 * Writes an oci-archive holding `images` (blobs shared between them written
 * once) to `file`, through a temp file renamed into place.
 */
export async function writeOciArchive(file: string, images: BuiltImage[], mtime: Date): Promise<number> {
  const blobs = new Map<Digest, Buffer>();
  for (const i of images) {
    blobs.set(i.manifestDigest, i.manifestBytes);
    blobs.set(i.configDigest, i.configBytes);
    for (const l of i.layers) blobs.set(l.digest, l.blob);
  }
  const files: Array<[string, Buffer]> = [
    ['oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }))],
    ['index.json', Buffer.from(JSON.stringify(archiveIndex(images)))],
    ...[...blobs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([d, b]): [string, Buffer] => [blobPath(d), b]),
  ];
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const pack = tar.pack();
  const out = createWriteStream(tmp);
  const written = new Promise<void>((resolve, reject) => {
    out.on('finish', resolve);
    out.on('error', reject);
    pack.on('error', reject);
  });
  pack.pipe(out);
  let size = 0;
  try {
    const head = { mode: 0o644, uid: 0, gid: 0, mtime };
    for (const d of ['blobs/', 'blobs/sha256/']) {
      await new Promise<void>((res, rej) => pack.entry({ ...head, name: d, type: 'directory', mode: 0o755 }, (e) => (e ? rej(e) : res())));
    }
    for (const [name, body] of files) {
      await new Promise<void>((res, rej) => pack.entry({ ...head, name, type: 'file', size: body.length }, body, (e) => (e ? rej(e) : res())));
      size += body.length;
    }
    pack.finalize();
    await written;
    await rename(tmp, file);
  } catch (e) {
    out.destroy();
    await unlink(tmp).catch(() => {});
    throw e;
  }
  return size;
}
