/**
 * Image archives built from TestImages, in memory: `docker save` archives
 * (classic and Docker ≥ 25 layouts), OCI layouts and oci-archives. A small
 * tar encoder of our own (not tar-stream) so tests can also write what no
 * sane tar writer does: `..` and absolute names, GNU long names, PAX paths,
 * negative sizes, duplicate entries, devices, no end marker.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { MediaType } from '../../src/oci/mediatypes.js';
import { formatReference, parseReference } from '../../src/oci/reference.js';
import type { Descriptor, Digest, ImageIndex } from '../../src/oci/types.js';
import type { TestImage, TestIndex } from './images.js';

export interface RawTarEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'link' | 'fifo' | 'char';
  data?: Buffer | string;
  linkname?: string;
  /** How a name over 100 bytes is written: a PAX `path` record (default) or a GNU `././@LongLink` entry. */
  longName?: 'pax' | 'gnu';
  /** Raw 12-byte size field (e.g. base-256 negative), instead of the data length. */
  sizeField?: Buffer;
  /** Raw typeflag character. */
  typeflag?: string;
}

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

function octal(n: number, width: number): Buffer {
  return enc(`${n.toString(8).padStart(width - 1, '0')}\0`);
}

function header(o: { name: string; size: number; typeflag: string; linkname?: string; sizeField?: Buffer }): Buffer {
  const h = Buffer.alloc(512);
  const name = enc(o.name);
  name.copy(h, 0, 0, Math.min(100, name.length));
  octal(0o644, 8).copy(h, 100);
  octal(0, 8).copy(h, 108);
  octal(0, 8).copy(h, 116);
  (o.sizeField ?? octal(o.size, 12)).copy(h, 124);
  octal(1704067200, 12).copy(h, 136); // 2024-01-01
  h.write(o.typeflag, 156, 'latin1');
  if (o.linkname) enc(o.linkname).copy(h, 157, 0, 100);
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  enc(`${sum.toString(8).padStart(6, '0')}\0 `).copy(h, 148);
  return h;
}

function pad(b: Buffer): Buffer[] {
  const rest = b.length % 512;
  return rest === 0 ? [b] : [b, Buffer.alloc(512 - rest)];
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (`${len}${body}`.length !== len) len = `${len}${body}`.length;
  return `${len}${body}`;
}

const TYPEFLAG = { file: '0', dir: '5', symlink: '2', link: '1', fifo: '6', char: '3' } as const;

/** A tar archive of `entries`, ending with two zero blocks unless `end: false`. */
export function tarBytes(entries: RawTarEntry[], opts: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.data) ? e.data : enc(e.data);
    const typeflag = e.typeflag ?? TYPEFLAG[e.type ?? 'file'];
    let name = e.name;
    if (enc(name).length > 100) {
      if (e.longName === 'gnu') {
        const long = Buffer.concat([enc(name), Buffer.alloc(1)]);
        parts.push(header({ name: '././@LongLink', size: long.length, typeflag: 'L' }), ...pad(long));
      } else {
        const pax = enc(paxRecord('path', name));
        parts.push(header({ name: 'PaxHeaders/x', size: pax.length, typeflag: 'x' }), ...pad(pax));
      }
      name = name.slice(0, 99);
    }
    parts.push(header({ name, size: data.length, typeflag, ...(e.linkname ? { linkname: e.linkname } : {}), ...(e.sizeField ? { sizeField: e.sizeField } : {}) }));
    if (data.length > 0) parts.push(...pad(data));
  }
  if (opts.end !== false) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function sha256(b: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}
const hex = (d: string): string => d.slice(d.indexOf(':') + 1);

/** The uncompressed tar of a TestImage layer (docker save stores layers uncompressed). */
export function rawLayer(img: TestImage, i: number): Buffer {
  const l = img.layers[i];
  if (!l) throw new Error(`image has no layer ${i}`);
  return l.mediaType.endsWith('gzip') ? gunzipSync(l.blob) : l.blob;
}

export interface SavedImage {
  image: TestImage;
  /** RepoTags as docker writes them (`app:1`, `localhost:5000/x:y`); none for an untagged image. */
  tags?: string[];
}

export interface DockerSaveOptions {
  layout?: 'classic' | 'docker25';
}

/**
 * The entries `docker save` writes for `images`. Classic: `<v1id>/{VERSION,json,layer.tar}`,
 * a layer shared with an earlier image as a symlink to that image's file (as moby does),
 * `<config-hex>.json`, `repositories`, `manifest.json` last. Docker ≥ 25: the same files
 * under `blobs/sha256/`, OCI manifests as blobs, `index.json` (one entry per tag) and `oci-layout`.
 */
export function dockerSaveEntries(images: SavedImage[], opts: DockerSaveOptions = {}): RawTarEntry[] {
  const layout = opts.layout ?? 'classic';
  const out: RawTarEntry[] = [];
  const manifest: Array<{ Config: string; RepoTags: string[] | null; Layers: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  const layerPathByDiff = new Map<string, string>();
  const written = new Set<string>();
  const indexEntries: Descriptor[] = [];
  const blob = (d: Digest, data: Buffer): string => {
    const name = `blobs/sha256/${hex(d)}`;
    if (!written.has(name)) {
      written.add(name);
      out.push({ name, data });
    }
    return name;
  };
  if (layout === 'docker25') out.push({ name: 'blobs/', type: 'dir' }, { name: 'blobs/sha256/', type: 'dir' });
  for (const [n, { image, tags = [] }] of images.entries()) {
    const layers: string[] = [];
    for (let i = 0; i < image.layers.length; i++) {
      const raw = rawLayer(image, i);
      const diffId = sha256(raw);
      if (layout === 'docker25') {
        layers.push(blob(diffId, raw));
        continue;
      }
      // Per image: a layer two images share gets a second directory whose layer.tar is a symlink, as moby writes it.
      const v1id = hex(sha256(`${n}/${i}/${diffId}`));
      const path = `${v1id}/layer.tar`;
      layers.push(path);
      if (written.has(path)) continue;
      written.add(path);
      out.push({ name: `${v1id}/`, type: 'dir' }, { name: `${v1id}/VERSION`, data: '1.0' }, { name: `${v1id}/json`, data: JSON.stringify({ id: v1id }) });
      const earlier = layerPathByDiff.get(diffId);
      if (earlier) out.push({ name: path, type: 'symlink', linkname: `../${earlier}` });
      else {
        out.push({ name: path, data: raw });
        layerPathByDiff.set(diffId, path);
      }
    }
    const configName = layout === 'docker25' ? blob(image.configDigest, image.configBytes) : `${hex(image.configDigest)}.json`;
    if (layout === 'classic' && !written.has(configName)) {
      written.add(configName);
      out.push({ name: configName, data: image.configBytes });
    }
    manifest.push({ Config: configName, RepoTags: tags.length > 0 ? tags : null, Layers: layers });
    for (const t of tags) {
      const colon = t.lastIndexOf(':');
      const top = layers[layers.length - 1] ?? '';
      (repositories[t.slice(0, colon)] ??= {})[t.slice(colon + 1)] = (layout === 'docker25' ? top.split('/').pop() : top.split('/')[0]) ?? '';
    }
    if (layout === 'docker25') {
      const m = {
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: image.configDigest, size: image.configBytes.length },
        layers: image.layers.map((_, i) => {
          const raw = rawLayer(image, i);
          return { mediaType: MediaType.ociLayer, digest: sha256(raw), size: raw.length };
        }),
      };
      const mb = Buffer.from(JSON.stringify(m));
      const md = sha256(mb);
      blob(md, mb);
      for (const t of tags) {
        indexEntries.push({
          mediaType: MediaType.ociManifest,
          digest: md,
          size: mb.length,
          annotations: { 'io.containerd.image.name': formatReference(parseReference(t)), 'org.opencontainers.image.ref.name': t.slice(t.lastIndexOf(':') + 1) },
        });
      }
    }
  }
  if (layout === 'docker25') {
    out.push({ name: 'index.json', data: JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: indexEntries }) });
    out.push({ name: 'oci-layout', data: JSON.stringify({ imageLayoutVersion: '1.0.0' }) });
  }
  if (Object.keys(repositories).length > 0) out.push({ name: 'repositories', data: JSON.stringify(repositories) });
  out.push({ name: 'manifest.json', data: JSON.stringify(manifest) });
  return out;
}

/** A `docker save` archive of `images` as tar bytes. */
export function dockerSaveArchive(images: SavedImage[], opts: DockerSaveOptions = {}): Buffer {
  return tarBytes(dockerSaveEntries(images, opts));
}

export interface LayoutImage {
  image: TestImage | TestIndex;
  /** org.opencontainers.image.ref.name of its index.json entry. */
  refName?: string;
  annotations?: Record<string, string>;
}

function isIndex(x: TestImage | TestIndex): x is TestIndex {
  return 'indexBytes' in x;
}

/** The files of an OCI image layout holding `images` (paths relative to the layout root). */
export function ociLayoutFiles(images: LayoutImage[]): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const blob = (d: string, b: Buffer): void => void files.set(`blobs/sha256/${hex(d)}`, b);
  const manifests: Descriptor[] = [];
  for (const { image, refName, annotations } of images) {
    const all = isIndex(image) ? image.images : [image];
    for (const im of all) {
      blob(im.manifestDigest, im.manifestBytes);
      for (const [d, b] of im.blobs) blob(d, b);
    }
    if (isIndex(image)) blob(image.indexDigest, image.indexBytes);
    const ann = { ...annotations, ...(refName ? { 'org.opencontainers.image.ref.name': refName } : {}) };
    const desc: Descriptor = isIndex(image) ? { ...image.descriptor } : { mediaType: image.mediaType, digest: image.manifestDigest, size: image.manifestBytes.length };
    manifests.push(Object.keys(ann).length > 0 ? { ...desc, annotations: ann } : desc);
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
  files.set('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  files.set('index.json', Buffer.from(JSON.stringify(index)));
  return files;
}

/** Writes an OCI layout directory (as `skopeo copy … oci:DIR` would). */
export async function writeOciLayout(dir: string, images: LayoutImage[]): Promise<string> {
  for (const [name, data] of ociLayoutFiles(images)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), data);
  }
  return dir;
}

/** An oci-archive: the layout's files in a tar (oci-layout first, as containers/image writes it). */
export function ociArchive(images: LayoutImage[]): Buffer {
  const files = ociLayoutFiles(images);
  const order = ['oci-layout', 'index.json', ...[...files.keys()].filter((k) => k.startsWith('blobs/')).sort()];
  return tarBytes([{ name: 'blobs/', type: 'dir' }, { name: 'blobs/sha256/', type: 'dir' }, ...order.map((name) => ({ name, data: files.get(name) as Buffer }))]);
}
