/**
 * `docker save` archives as ImageSources, one per image in manifest.json.
 *
 * Two layouts exist (docker-image-spec "Combined Image JSON + Filesystem
 * Changeset Format"): the classic one (`<config-hex>.json`,
 * `<v1-id>/layer.tar`, `repositories`, `manifest.json`) and Docker ≥ 25's,
 * which keeps every file under `blobs/sha256/` and adds an OCI layout
 * (`oci-layout`, `index.json`, manifests as blobs). manifest.json lists
 * every image in both, including untagged ones that index.json omits, so it
 * drives; where index.json holds a real manifest for the same config, that
 * manifest is used as is, so the image keeps the digest it was pulled with.
 *
 * Otherwise there is no manifest blob and one is synthesized, always the same
 * way, so loading one archive twice gives one digest: an OCI image manifest
 * (OCI types throughout: the copy engine takes no uncompressed Docker layer
 * type) whose config is the config file's bytes and whose layers are the
 * layer files as they are. An uncompressed layer's digest is its diff_id from
 * the config, and its bytes are checked against it when read (fetch), so a
 * layer that disagrees with the config is refused; compressed layers (some
 * tools write them) keep their compressed digest. Key order follows Go's
 * encoding of the OCI types, so an archive without index.json yields the
 * digest Docker ≥ 25 would have written for it.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { S2nError, isS2nError } from '../errors.js';
import { isDigest, sha256Digest, shortDigest } from '../oci/digest.js';
import { MediaType, isIndexType, isManifestType } from '../oci/mediatypes.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { Descriptor, Digest, ImageManifest } from '../oci/types.js';
import { parseManifestBlob, validateImageConfig, validateIndex } from '../oci/validate.js';
import { detectCompression } from './archive/decompress.js';
import { ArchiveLimits } from './archive/limits.js';
import {
  blobEntryName,
  blobMissingError,
  digestOfBlobName,
  parseArchiveJson,
  readSmallFile,
  requireFile,
  type ArchiveFile,
  type ArchiveReader,
} from './archive/reader.js';
import { archiveError, normaliseEntryName } from './archive/tar-format.js';
import type { FetchOptions, ImageSource } from './source.js';

const MAX_IMAGES = 10_000;
/** Media type Docker (and containerd) write for uncompressed layers in manifests. */
const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';

export interface DockerArchiveImage {
  /** Position in manifest.json. */
  index: number;
  /** RepoTags as written (familiar form, `busybox:latest`); empty for an untagged image. */
  repoTags: string[];
  configPath: string;
  layerPaths: string[];
}

/** Where a blob of a resolved image comes from. */
type BlobPlan = { bytes: Buffer } | { file: ArchiveFile; diffId?: Digest; path: string };

interface ResolvedImage {
  root: Descriptor;
  blobs: Map<string, BlobPlan>;
  /** True when the manifest came from the archive's index.json (not synthesized). */
  fromIndex: boolean;
}

interface OciCandidate {
  desc: Descriptor;
  manifest: ImageManifest;
}

function badManifestJson(reader: ArchiveReader, detail: string): S2nError {
  return archiveError(reader.description, `manifest.json: ${detail}`, { entry: 'manifest.json' });
}

/** True when `reader` looks like a docker save archive. */
export async function isDockerArchive(reader: ArchiveReader): Promise<boolean> {
  return (await reader.stat('manifest.json')) !== undefined;
}

export class DockerArchive {
  private ociView: Promise<Map<string, OciCandidate>> | undefined;

  private constructor(
    readonly reader: ArchiveReader,
    private readonly images: DockerArchiveImage[],
  ) {}

  /** Reads and checks manifest.json (the reader stays the caller's to close). */
  static async open(reader: ArchiveReader): Promise<DockerArchive> {
    const file = await requireFile(reader, 'manifest.json', 'docker save index');
    const doc = parseArchiveJson(reader, await readSmallFile(reader, file, ArchiveLimits.manifestJsonBytes, 'docker save index'), 'manifest.json');
    if (!Array.isArray(doc)) throw badManifestJson(reader, 'is not a JSON array');
    if (doc.length === 0) throw badManifestJson(reader, 'lists no images');
    if (doc.length > MAX_IMAGES) throw badManifestJson(reader, `lists ${doc.length} images (at most ${MAX_IMAGES})`);
    const images = doc.map((item: unknown, index): DockerArchiveImage => {
      if (typeof item !== 'object' || item === null) throw badManifestJson(reader, `entry ${index} is not an object`);
      const o = item as Record<string, unknown>;
      const config = o['Config'];
      const tags = o['RepoTags'] ?? [];
      const layers = o['Layers'] ?? [];
      if (typeof config !== 'string' || config === '') throw badManifestJson(reader, `entry ${index} has no Config path`);
      if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw badManifestJson(reader, `entry ${index}: RepoTags is not a list of names`);
      if (!Array.isArray(layers) || !layers.every((l) => typeof l === 'string' && l !== '')) {
        throw badManifestJson(reader, `entry ${index}: Layers is not a list of paths`);
      }
      if (layers.length > ArchiveLimits.layers) {
        throw new S2nError('ELIMIT', `read archive ${reader.description}: image ${index} has ${layers.length} layers (at most ${ArchiveLimits.layers} supported)`, {
          hint: 'the image is unusually deep or hostile; check its source',
        });
      }
      return {
        index,
        repoTags: tags as string[],
        configPath: normaliseEntryName(config, reader.description),
        layerPaths: (layers as string[]).map((l) => normaliseEntryName(l, reader.description)),
      };
    });
    return new DockerArchive(reader, images);
  }

  get description(): string {
    return this.reader.description;
  }

  listImages(): DockerArchiveImage[] {
    return this.images.map((i) => ({ ...i, repoTags: [...i.repoTags], layerPaths: [...i.layerPaths] }));
  }

  /** The image at `selector`: its position in manifest.json, or one of its RepoTags (as written or normalised). */
  source(selector: number | string): DockerArchiveSource {
    const image = typeof selector === 'number' ? this.images[selector] : this.find(selector);
    if (!image) {
      const names = this.images.flatMap((i) => i.repoTags);
      throw new S2nError('EIMAGE', `find image ${String(selector)} in archive ${this.description}: not there`, {
        hint: names.length > 0 ? `the archive holds: ${names.join(', ')}` : `the archive holds ${this.images.length} untagged image(s)`,
        context: { archive: this.description, selector, names },
      });
    }
    return new DockerArchiveSource(this, image);
  }

  private find(name: string): DockerArchiveImage | undefined {
    const exact = this.images.find((i) => i.repoTags.includes(name));
    if (exact) return exact;
    const want = normalisedOrUndefined(name);
    return want === undefined ? undefined : this.images.find((i) => i.repoTags.some((t) => normalisedOrUndefined(t) === want));
  }

  /**
   * Docker ≥ 25: every manifest index.json leads to (through nested indexes),
   * by config digest. Empty when there is no index.json or it cannot be
   * used: manifest.json alone describes the archive fully.
   */
  ociManifestsByConfig(): Promise<Map<string, OciCandidate>> {
    this.ociView ??= this.readOciView().catch((e: unknown) => {
      if (isS2nError(e) && e.code !== 'EUNSAFEPATH') return new Map<string, OciCandidate>();
      throw e;
    });
    return this.ociView;
  }

  private async readOciView(): Promise<Map<string, OciCandidate>> {
    const out = new Map<string, OciCandidate>();
    const indexFile = await this.reader.stat('index.json');
    if (!indexFile) return out;
    const index = validateIndex(parseArchiveJson(this.reader, await readSmallFile(this.reader, indexFile, ArchiveLimits.manifestBytes, 'OCI index'), 'index.json'), {
      what: `index.json of ${this.description}`,
    });
    let budget = ArchiveLimits.totalJsonBytes;
    const seen = new Set<string>();
    const walk = async (descs: Descriptor[], depth: number): Promise<void> => {
      for (const d of descs) {
        if (seen.has(d.digest) || !isDigest(d.digest) || !(isIndexType(d.mediaType) || isManifestType(d.mediaType))) continue;
        seen.add(d.digest);
        const f = await this.reader.stat(blobEntryName(d.digest));
        // containerd exports only the platforms it has: other children of an index are absent.
        if (!f || f.size !== d.size || f.size > ArchiveLimits.manifestBytes || f.size > budget) continue;
        budget -= f.size;
        const parsed = parseManifestBlob(await readSmallFile(this.reader, f, ArchiveLimits.manifestBytes, 'manifest'), d, { reference: this.description });
        if (parsed.kind === 'manifest') {
          const desc: Descriptor = { mediaType: parsed.manifest.mediaType ?? d.mediaType, digest: d.digest, size: d.size };
          if (!out.has(parsed.manifest.config.digest)) out.set(parsed.manifest.config.digest, { desc, manifest: parsed.manifest });
        } else if (depth < ArchiveLimits.indexDepth) {
          await walk(parsed.index.manifests, depth + 1);
        }
      }
    };
    await walk(index.manifests, 0);
    return out;
  }
}

function normalisedOrUndefined(name: string): string | undefined {
  try {
    return formatReference(parseReference(name));
  } catch {
    return undefined;
  }
}

/** One image of a docker save archive. resolve() returns an OCI manifest: the archive's own, or a synthesized one. */
export class DockerArchiveSource implements ImageSource {
  readonly description: string;
  private resolved: Promise<ResolvedImage> | undefined;

  constructor(
    private readonly archive: DockerArchive,
    readonly image: DockerArchiveImage,
  ) {
    const name = image.repoTags[0];
    this.description = `docker-archive:${archive.description}${name !== undefined ? `:${name}` : `#${image.index}`}`;
  }

  private get reader(): ArchiveReader {
    return this.archive.reader;
  }

  async resolve(opts?: FetchOptions): Promise<Descriptor> {
    opts?.signal?.throwIfAborted();
    this.resolved ??= this.plan();
    return { ...(await this.resolved).root };
  }

  /** Whether resolve() found the manifest in the archive's index.json (Docker ≥ 25) rather than synthesizing one. */
  async manifestFromArchive(): Promise<boolean> {
    this.resolved ??= this.plan();
    return (await this.resolved).fromIndex;
  }

  async fetch(desc: Descriptor, opts?: FetchOptions): Promise<Readable> {
    opts?.signal?.throwIfAborted();
    this.resolved ??= this.plan();
    const plan = (await this.resolved).blobs.get(desc.digest);
    if (plan && 'bytes' in plan) return Readable.from([plan.bytes]);
    if (plan) {
      const stream = this.reader.open(plan.file);
      if (plan.diffId === undefined) return stream;
      const check = diffIdCheck(plan.diffId, plan.path, this.reader.description);
      stream.on('error', (e) => check.destroy(e));
      return stream.pipe(check);
    }
    const f = await this.reader.stat(blobEntryName(desc.digest));
    if (!f) throw blobMissingError(this.reader, desc.digest);
    return this.reader.open(f);
  }

  /**
   * True when the archive reader already hashed the bytes it would serve for
   * `desc` (streamed input) and they match: the load's dry run skips them.
   */
  async contentMatches(desc: Descriptor): Promise<boolean> {
    this.resolved ??= this.plan();
    const plan = (await this.resolved).blobs.get(desc.digest);
    if (plan && 'bytes' in plan) return true;
    const file = plan ? plan.file : await this.reader.stat(blobEntryName(desc.digest));
    return file?.digest === desc.digest && file.size === desc.size;
  }

  private async plan(): Promise<ResolvedImage> {
    const r = this.reader;
    const img = this.image;
    const configFile = await requireFile(r, img.configPath, 'image config');
    const configBytes = await readSmallFile(r, configFile, ArchiveLimits.configBytes, 'image config');
    const configDigest = sha256Digest(configBytes);
    const config = validateImageConfig(parseArchiveJson(r, configBytes, img.configPath), { what: `${img.configPath} in ${r.description}` });
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== img.layerPaths.length) {
      throw archiveError(r.description, `image ${this.label()}: its config lists ${diffIds.length} layer diff_ids but manifest.json lists ${img.layerPaths.length} layers`, {
        config: img.configPath,
      });
    }

    const oci = (await this.archive.ociManifestsByConfig()).get(configDigest);
    if (oci && this.ociManifestFits(oci.manifest, diffIds)) {
      return { root: oci.desc, blobs: new Map(), fromIndex: true };
    }

    const blobs = new Map<string, BlobPlan>();
    const layers: Descriptor[] = [];
    for (const [i, path] of img.layerPaths.entries()) {
      const diffId = diffIds[i] as Digest;
      const file = await requireFile(r, path, 'layer');
      const c = detectCompression(await r.head(file, 8));
      let layer: Descriptor;
      if (c === 'none') {
        layer = { mediaType: MediaType.ociLayer, digest: diffId, size: file.size };
        if (!blobs.has(diffId)) blobs.set(diffId, { file, diffId, path });
      } else if (c === 'gzip' || c === 'zstd') {
        const digest = file.digest ?? digestOfBlobName(path) ?? (await hashFile(r, file));
        layer = { mediaType: c === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayerZstd, digest, size: file.size };
        if (!blobs.has(digest)) blobs.set(digest, { file, path });
      } else {
        throw archiveError(r.description, `layer "${path}" is ${c}-compressed; only tar, tar+gzip and tar+zstd layers are supported`, { entry: path });
      }
      layers.push(layer);
    }
    // Key order as Go's encoding/json writes ocispec.Manifest and ocispec.Descriptor.
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const root: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256Digest(manifestBytes), size: manifestBytes.length };
    blobs.set(configDigest, { bytes: configBytes });
    blobs.set(root.digest, { bytes: manifestBytes });
    return { root, blobs, fromIndex: false };
  }

  /** An index.json manifest is used only when it agrees with the config (Docker 25.0.0 wrote manifests without layers). */
  private ociManifestFits(m: ImageManifest, diffIds: Digest[]): boolean {
    if (m.layers.length !== diffIds.length) return false;
    return m.layers.every((l, i) => (l.mediaType === MediaType.ociLayer || l.mediaType === DOCKER_LAYER_TAR ? l.digest === diffIds[i] : true));
  }

  private label(): string {
    return this.image.repoTags[0] ?? `#${this.image.index}`;
  }
}

async function hashFile(reader: ArchiveReader, file: ArchiveFile): Promise<Digest> {
  const h = createHash('sha256');
  let n = 0;
  for await (const c of reader.open(file) as AsyncIterable<Buffer>) {
    h.update(c);
    n += c.length;
  }
  if (n !== file.size) throw archiveError(reader.description, `"${file.name}" changed or was cut short while being read`, { entry: file.name });
  return `sha256:${h.digest('hex')}`;
}

/**
 * Passes a docker save layer through and fails at its end when its sha256 is
 * not the diff_id the config names: the config and the layers disagree.
 */
function diffIdCheck(diffId: Digest, path: string, where: string): Transform {
  const h = createHash(diffId.startsWith('sha512:') ? 'sha512' : 'sha256');
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      h.update(chunk);
      cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      const actual = `${diffId.slice(0, diffId.indexOf(':'))}:${h.digest('hex')}`;
      if (actual === diffId) return cb();
      cb(
        new S2nError('EDIGEST', `read archive ${where}: layer "${path}" does not match its config: content is ${shortDigest(actual)}, rootfs.diff_ids says ${shortDigest(diffId)}`, {
          hint: 'the archive was modified or damaged after it was saved; create it again',
          context: { archive: where, entry: path, expected: diffId, actual },
        }),
      );
    },
  });
}
