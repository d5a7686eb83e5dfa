/**
 * Builds OCI and Docker schema2 test images from code: tar layers with
 * tar-stream, gzip with zlib, configs and manifests as plain objects. Output
 * is deterministic (fixed mtimes, fixed `created`), so digests are stable
 * across runs and machines.
 */
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zc, createGzip, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { ContainerConfig, Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform } from '../../src/oci/types.js';
import { makeTempDir } from './tmp.js';

/** mtime of every entry unless given; also the config `created` time. */
export const FIXED_MTIME = new Date('2024-01-01T00:00:00Z');

export type ImageFormat = 'oci' | 'docker';
export type Compression = 'gzip' | 'none';

interface EntryCommon {
  /** Written as given (no normalisation), so tests can build hostile paths like `../x` or `/abs`. */
  path: string;
  /** Permission bits. Note tar-stream turns 0 into its default (0644/0755), so mode 0 cannot be expressed. */
  mode?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: Date;
  /** Extra PAX records, e.g. `{ 'SCHILY.xattr.user.test': 'v' }`. */
  pax?: Record<string, string>;
}

export type LayerEntry =
  | (EntryCommon & { type: 'file'; content: string | Buffer })
  | (EntryCommon & { type: 'dir' })
  | (EntryCommon & { type: 'symlink'; target: string })
  | (EntryCommon & { type: 'hardlink'; target: string })
  | (EntryCommon & { type: 'character-device' | 'block-device'; devmajor: number; devminor: number })
  | (EntryCommon & { type: 'fifo' });

type Extra = Omit<EntryCommon, 'path'>;
export const file = (path: string, content: string | Buffer, o: Extra = {}): LayerEntry => ({ type: 'file', path, content, ...o });
export const dir = (path: string, o: Extra = {}): LayerEntry => ({ type: 'dir', path, ...o });
export const symlink = (path: string, target: string, o: Extra = {}): LayerEntry => ({ type: 'symlink', path, target, ...o });
export const hardlink = (path: string, target: string, o: Extra = {}): LayerEntry => ({ type: 'hardlink', path, target, ...o });
/** `.wh.NAME` deleting `dir/NAME` from lower layers. */
export const whiteout = (path: string): LayerEntry => {
  const i = path.lastIndexOf('/');
  return file(i < 0 ? `.wh.${path}` : `${path.slice(0, i + 1)}.wh.${path.slice(i + 1)}`, '');
};
/** `.wh..wh..opq` hiding everything below `dirPath` from lower layers. */
export const opaqueWhiteout = (dirPath: string): LayerEntry => file(`${dirPath.replace(/\/+$/, '')}/.wh..wh..opq`, '');

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Media type of a layer for a format and compression. */
export function layerMediaType(format: ImageFormat, compression: Compression): string {
  if (format === 'docker') return compression === 'gzip' ? MediaType.dockerLayerGzip : 'application/vnd.docker.image.rootfs.diff.tar';
  return compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayer;
}

/** tar-stream's header argument (its own HeaderArgument type is not exported). */
type PackHeader = Partial<tar.Header> & { name: string };

function tarHeader(e: LayerEntry): PackHeader {
  const defaultMode = e.type === 'dir' ? 0o755 : e.type === 'symlink' ? 0o777 : 0o644;
  const h: PackHeader = {
    name: e.path,
    mode: e.mode ?? defaultMode,
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    uname: e.uname ?? '',
    gname: e.gname ?? '',
    mtime: e.mtime ?? FIXED_MTIME,
  };
  if (e.pax) h.pax = e.pax;
  switch (e.type) {
    case 'file':
      return { ...h, type: 'file', size: Buffer.byteLength(e.content) };
    case 'dir':
      return { ...h, type: 'directory' };
    case 'symlink':
      return { ...h, type: 'symlink', linkname: e.target };
    case 'hardlink':
      return { ...h, type: 'link', linkname: e.target };
    case 'character-device':
    case 'block-device':
      return { ...h, type: e.type, devmajor: e.devmajor, devminor: e.devminor };
    case 'fifo':
      return { ...h, type: 'fifo' };
  }
}

/** The uncompressed tar of `entries`. */
export async function buildTar(entries: LayerEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  // Collect while adding, so the pack never stalls on backpressure.
  const collected = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (e.type === 'file') pack.entry(tarHeader(e), Buffer.from(e.content), done);
      else pack.entry(tarHeader(e), done); // entries without a body complete by themselves
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

export interface TestLayer {
  mediaType: string;
  digest: Digest;
  size: number;
  diffId: Digest;
  blob: Buffer;
}

export async function buildLayer(
  entries: LayerEntry[],
  opts: { compression?: Compression; format?: ImageFormat } = {},
): Promise<TestLayer> {
  const compression = opts.compression ?? 'gzip';
  const raw = await buildTar(entries);
  // zlib's gzip header has mtime 0 and a fixed OS byte, so the output is deterministic.
  const blob = compression === 'gzip' ? gzipSync(raw) : raw;
  return {
    mediaType: layerMediaType(opts.format ?? 'oci', compression),
    digest: sha256(blob),
    size: blob.length,
    diffId: sha256(raw),
    blob,
  };
}

export interface BuildImageOptions {
  /** One entry list per layer, bottom first. */
  layers: LayerEntry[][];
  format?: ImageFormat;
  compression?: Compression;
  platform?: Platform;
  /** Merged into the config's `config` (Env, Cmd, Entrypoint, User...). */
  config?: Partial<ContainerConfig>;
  annotations?: Record<string, string>;
  /** Edit the image config before it is serialised (e.g. a wrong diff_id). */
  mutateConfig?: (c: ImageConfig) => void;
  /** Edit the manifest before it is serialised (e.g. a wrong layer size). */
  mutateManifest?: (m: ImageManifest) => void;
}

/** What both in-memory and on-disk test images share. */
interface ImageCommon {
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDigest: Digest;
  mediaType: string;
  /** Descriptor of the manifest, with platform, as an index would list it. */
  descriptor: Descriptor;
  platform: Platform;
  config: ImageConfig;
  configBytes: Buffer;
  configDigest: Digest;
}

export interface TestImage extends ImageCommon {
  layers: TestLayer[];
  /** Config and layer blobs by digest (not the manifest). */
  blobs: Map<Digest, Buffer>;
}

export interface TestIndex {
  index: ImageIndex;
  indexBytes: Buffer;
  indexDigest: Digest;
  mediaType: string;
  descriptor: Descriptor;
  images: TestImage[];
  /** Every config and layer blob of every image. */
  blobs: Map<Digest, Buffer>;
}

const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

function makeConfig(
  platform: Platform,
  diffIds: Digest[],
  extra: Partial<ContainerConfig> | undefined,
): ImageConfig {
  const cfg: ImageConfig = {
    created: FIXED_MTIME.toISOString(),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    ...(platform['os.version'] ? { 'os.version': platform['os.version'] } : {}),
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      ...extra,
    },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: FIXED_MTIME.toISOString(), created_by: `s2n-oci test layer ${i}` })),
  };
  return cfg;
}

function finishImage(
  format: ImageFormat,
  platform: Platform,
  config: ImageConfig,
  layerDescs: Descriptor[],
  opts: Pick<BuildImageOptions, 'annotations' | 'mutateManifest'>,
): ImageCommon {
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = sha256(configBytes);
  const mediaType = format === 'docker' ? MediaType.dockerManifest : MediaType.ociManifest;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: format === 'docker' ? MediaType.dockerConfig : MediaType.ociConfig,
      digest: configDigest,
      size: configBytes.length,
    },
    layers: layerDescs,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  opts.mutateManifest?.(manifest);
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = sha256(manifestBytes);
  return {
    manifest,
    manifestBytes,
    manifestDigest,
    mediaType,
    descriptor: { mediaType, digest: manifestDigest, size: manifestBytes.length, platform },
    platform,
    config,
    configBytes,
    configDigest,
  };
}

export async function buildImage(opts: BuildImageOptions): Promise<TestImage> {
  const format = opts.format ?? 'oci';
  const platform = opts.platform ?? DEFAULT_PLATFORM;
  const layers: TestLayer[] = [];
  for (const entries of opts.layers) {
    layers.push(await buildLayer(entries, { format, compression: opts.compression ?? 'gzip' }));
  }
  const config = makeConfig(platform, layers.map((l) => l.diffId), opts.config);
  opts.mutateConfig?.(config);
  const common = finishImage(
    format,
    platform,
    config,
    layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    opts,
  );
  const blobs = new Map<Digest, Buffer>([[common.configDigest, common.configBytes]]);
  for (const l of layers) blobs.set(l.digest, l.blob);
  return { ...common, layers, blobs };
}

/** A multi-platform OCI index or Docker manifest list over `images` (each keeps its own platform). */
export function buildIndex(
  images: TestImage[],
  format: ImageFormat,
  opts: { annotations?: Record<string, string>; mutateIndex?: (i: ImageIndex) => void } = {},
): TestIndex {
  const mediaType = format === 'docker' ? MediaType.dockerManifestList : MediaType.ociIndex;
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType,
    manifests: images.map((im) => ({ ...im.descriptor })),
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  opts.mutateIndex?.(index);
  const indexBytes = Buffer.from(JSON.stringify(index));
  const indexDigest = sha256(indexBytes);
  const blobs = new Map<Digest, Buffer>();
  for (const im of images) for (const [d, b] of im.blobs) blobs.set(d, b);
  return {
    index,
    indexBytes,
    indexDigest,
    mediaType,
    descriptor: { mediaType, digest: indexDigest, size: indexBytes.length },
    images,
    blobs,
  };
}

/** A small, typical image: a few files, a dir, a symlink; handy default for e2e tests. */
export async function smallImage(
  opts: { format?: ImageFormat; platform?: Platform; marker?: string } = {},
): Promise<TestImage> {
  const marker = opts.marker ?? 'hello';
  return buildImage({
    format: opts.format ?? 'oci',
    ...(opts.platform ? { platform: opts.platform } : {}),
    layers: [
      [dir('etc/'), file('etc/os-release', 'ID=s2n-test\n'), dir('bin/'), file('bin/hello', `#!/bin/sh\necho ${marker}\n`, { mode: 0o755 })],
      [file('etc/motd', `${marker}\n`), symlink('etc/motd.link', 'motd')],
    ],
  });
}

// ---------------------------------------------------------------------------
// Large, incompressible layers streamed to disk (for benchmarks).

/** Deterministic pseudo-random bytes: AES-256-CTR keystream keyed by the seed (fast and incompressible). */
export async function* randomChunks(size: number, seed: string | number, chunkSize = 1 << 20): AsyncGenerator<Buffer> {
  const key = createHash('sha256').update(`s2n-test-random:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(chunkSize);
  let left = size;
  while (left > 0) {
    const n = Math.min(left, chunkSize);
    yield cipher.update(n === chunkSize ? zeros : zeros.subarray(0, n));
    left -= n;
  }
}

/** Passes bytes through, counting them and hashing them with sha256. */
export class HashTap extends Transform {
  readonly hash: Hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

export interface DiskLayer {
  mediaType: string;
  digest: Digest;
  size: number;
  diffId: Digest;
  /** The blob file. */
  path: string;
}

export interface BigLayerOptions {
  /** Where blobs go, as `blobs/sha256/<hex>` (an OCI layout's blob dir). Default: a new temp dir. */
  dir?: string;
  compression?: Compression;
  format?: ImageFormat;
  /** zlib level (Huffman-only strategy). Default 1. */
  gzipLevel?: number;
  /** Data is split into files of at most this size. Default 64 MiB. */
  fileSize?: number;
  /** Reuse an identical layer made earlier in the same dir (inputs are deterministic). Default true. */
  reuse?: boolean;
}

/**
 * A layer holding `sizeBytes` of pseudo-random file data derived from `seed`,
 * streamed tar → gzip → file with both digests computed on the way; memory
 * use stays flat whatever the size.
 */
export async function bigRandomLayer(sizeBytes: number, seed: string | number, opts: BigLayerOptions = {}): Promise<DiskLayer> {
  const root = opts.dir ?? (await makeTempDir('s2n-biglayer-'));
  const compression = opts.compression ?? 'gzip';
  const format = opts.format ?? 'oci';
  const level = opts.gzipLevel ?? 1;
  const fileSize = opts.fileSize ?? 64 << 20;
  const blobDir = join(root, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  const mediaType = layerMediaType(format, compression);

  const cacheDir = join(root, '.s2n-test-cache');
  const cacheKey = join(cacheDir, `${encodeURIComponent(String(seed))}-${sizeBytes}-${compression}-huff${level}-${fileSize}.json`);
  if (opts.reuse ?? true) {
    try {
      const hit = JSON.parse(await readFile(cacheKey, 'utf8')) as Omit<DiskLayer, 'mediaType' | 'path'>;
      const path = join(blobDir, hit.digest.slice('sha256:'.length));
      if ((await stat(path)).size === hit.size) return { ...hit, mediaType, path };
    } catch {
      /* no usable cache entry */
    }
  }

  const pack = tar.pack();
  const diffTap = new HashTap();
  const blobTap = new HashTap();
  const tmp = join(blobDir, `.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  const stages: NodeJS.ReadWriteStream[] = [diffTap];
  // Random data has no matches to find, so Huffman-only gives level-1 output at ~5x the speed.
  if (compression === 'gzip') stages.push(createGzip({ level, strategy: zc.Z_HUFFMAN_ONLY, chunkSize: 1 << 20 }));
  stages.push(blobTap);
  // tar-stream packs are streamx streams; wrap as a node Readable for pipeline.
  const written = pipeline([Readable.from(pack as AsyncIterable<Buffer>), ...stages, createWriteStream(tmp)]);

  const feed = async (): Promise<void> => {
    await writeEntry(pack, { name: 'random/', type: 'directory', mode: 0o755, mtime: FIXED_MTIME, uid: 0, gid: 0 });
    let offset = 0;
    let n = 0;
    do {
      const size = Math.min(fileSize, sizeBytes - offset);
      const header = { name: `random/${String(n).padStart(4, '0')}.bin`, type: 'file' as const, size, mode: 0o644, mtime: FIXED_MTIME, uid: 0, gid: 0 };
      await writeEntry(pack, header, randomChunks(size, `${seed}/${n}`));
      offset += size;
      n++;
    } while (offset < sizeBytes);
    pack.finalize();
  };
  await Promise.all([feed(), written]);

  const layer: DiskLayer = {
    mediaType,
    digest: `sha256:${blobTap.hash.digest('hex')}`,
    size: blobTap.bytes,
    diffId: `sha256:${diffTap.hash.digest('hex')}`,
    path: '',
  };
  layer.path = join(blobDir, layer.digest.slice('sha256:'.length));
  await rename(tmp, layer.path);
  await mkdir(cacheDir, { recursive: true });
  await writeFile(cacheKey, JSON.stringify({ digest: layer.digest, size: layer.size, diffId: layer.diffId }));
  return layer;
}

async function writeEntry(pack: tar.Pack, header: PackHeader, data?: AsyncIterable<Buffer>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const ws = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    if (!data) return;
    (async () => {
      for await (const chunk of data) {
        if (!ws.write(chunk)) await once(ws, 'drain');
      }
      ws.end(undefined);
    })().catch(reject);
  });
}

export interface LargeTestImage extends ImageCommon {
  layers: DiskLayer[];
  /** Config and layer blob files by digest. */
  blobs: Map<Digest, string>;
  /** The dir, which is also a valid OCI image layout (`oci-layout`, `index.json`, `blobs/`), tagged `latest`. */
  layoutDir: string;
}

/**
 * An image of `layers` random layers of `layerSize` bytes each, written under
 * `dir` as an OCI image layout. Generated layers are reused on later calls
 * with the same arguments.
 */
export async function buildLargeImageOnDisk(
  dirPath: string,
  opts: { layers: number; layerSize: number; format?: ImageFormat; compression?: Compression; seed?: string; platform?: Platform },
): Promise<LargeTestImage> {
  const format = opts.format ?? 'oci';
  const platform = opts.platform ?? DEFAULT_PLATFORM;
  const seed = opts.seed ?? 's2n-bench';
  // Two layers at a time: generation is CPU-bound (AES + deflate) and test machines have two cores.
  const layers: DiskLayer[] = new Array<DiskLayer>(opts.layers);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < opts.layers; i = next++) {
      layers[i] = await bigRandomLayer(opts.layerSize, `${seed}-${i}`, { dir: dirPath, format, compression: opts.compression ?? 'gzip' });
    }
  };
  await Promise.all([worker(), worker()]);
  const config = makeConfig(platform, layers.map((l) => l.diffId), undefined);
  const common = finishImage(
    format,
    platform,
    config,
    layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    {},
  );
  const blobDir = join(dirPath, 'blobs', 'sha256');
  const blobPath = (d: Digest): string => join(blobDir, d.slice('sha256:'.length));
  const configPath = blobPath(common.configDigest);
  if (!existsSync(configPath)) await writeFile(configPath, common.configBytes);
  const manifestPath = blobPath(common.manifestDigest);
  if (!existsSync(manifestPath)) await writeFile(manifestPath, common.manifestBytes);
  await writeFile(join(dirPath, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [{ ...common.descriptor, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
  };
  await writeFile(join(dirPath, 'index.json'), JSON.stringify(index));
  const blobs = new Map<Digest, string>([[common.configDigest, configPath]]);
  for (const l of layers) blobs.set(l.digest, l.path);
  return { ...common, layers, blobs, layoutDir: dirPath };
}
