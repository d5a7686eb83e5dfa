/**
 * Image archives as ImageSinks: the write side of `save` and of
 * `copy … docker-archive:FILE` / `oci-archive:FILE`. The tar is streamed
 * entry by entry as the copy engine hands blobs over (each checked against its
 * descriptor on the way through); nothing is staged. The file is written under
 * a temporary name next to FILE and renamed into place by close(), so a failed
 * save leaves no half archive behind. `ArchiveSink.toStream` writes to an
 * open stream instead (`save` to stdout), which it does not end or close; a
 * failure there leaves what was written.
 *
 * Both formats keep every blob exactly as it is stored (compressed layers
 * stay compressed), so manifest digests survive a save → load round trip:
 *
 *   oci-archive     oci-layout, index.json, blobs/sha256/<hex>
 *   docker-archive  the same OCI layout (as Docker ≥ 25 writes it) plus
 *                   manifest.json (Config, RepoTags, Layers pointing at
 *                   blobs/sha256/<hex>) and repositories
 *
 * Layers listed in manifest.json may be gzip or zstd compressed: `docker load`
 * and containers/image (skopeo, podman) decompress them by magic, and
 * s2n-oci's own load takes the manifest from index.json, so the digest is the
 * one the image was pulled with. The alternative, uncompressed `layer.tar`
 * files whose digest is the diff_id, would need each layer decompressed twice
 * (a tar header carries the size first) and would change the manifest digest.
 *
 * index.json entries carry `io.containerd.image.name` (the full name, as
 * Docker and containerd export it) and `org.opencontainers.image.ref.name`
 * (the same name, which `skopeo … oci-archive:FILE:NAME` looks up). A name
 * without a repository (`latest`, from `oci-archive:FILE:latest`) becomes the
 * ref name only.
 */
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import type { CopyResult } from '../copy.js';
import { S2nError, sysCode } from '../errors.js';
import { parseDigest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { familiarReference, parseReference, type Reference } from '../oci/reference.js';
import { Annotation, type Descriptor, type ImageIndex } from '../oci/types.js';
import { verifyStream } from '../oci/verify.js';
import { CONTAINERD_IMAGE_NAME, LAYOUT_VERSION } from '../sources/oci-layout.js';
import type { ImageSink, PutOptions } from '../sources/source.js';
import { privateName } from '../store/fsutil.js';
import { isValidRefName } from '../store/store.js';

export type ArchiveFormat = 'docker-archive' | 'oci-archive';

export const ARCHIVE_FORMATS: readonly ArchiveFormat[] = ['docker-archive', 'oci-archive'];

/** Entries get a fixed mtime so the same images give the same archive bytes. */
const MTIME = new Date(0);

interface SavedEntry {
  names: string[];
  result: CopyResult;
}

function blobName(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

export class ArchiveSink implements ImageSink {
  readonly description: string;
  private readonly pack = tar.pack();
  private readonly done: Promise<void>;
  private readonly written = new Set<string>();
  private readonly images: SavedEntry[] = [];
  private queue: Promise<void> = Promise.resolve();
  private failed: unknown;
  private closed = false;

  private constructor(
    readonly path: string,
    readonly format: ArchiveFormat,
    /** The temporary file renamed to `path` by close(); undefined when writing to a stream. */
    private readonly tmp: string | undefined,
    file: NodeJS.WritableStream,
  ) {
    this.description = `${format}:${path}`;
    this.done = tmp === undefined ? pumpInto(this.pack as AsyncIterable<Buffer>, file) : pipeline(this.pack, file);
    this.done.catch((e: unknown) => (this.failed ??= e));
  }

  /** Writes the archive to `out` (e.g. stdout), which is left open; `name` is for messages. */
  static async toStream(out: NodeJS.WritableStream, format: ArchiveFormat, name = '-'): Promise<ArchiveSink> {
    const sink = new ArchiveSink(name, format, undefined, out);
    await sink.start();
    return sink;
  }

  private async start(): Promise<void> {
    await this.entry('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })));
    await this.dir('blobs/');
    await this.dir('blobs/sha256/');
  }

  /** Starts writing `path` (under a temporary name until close()). */
  static async create(path: string, format: ArchiveFormat): Promise<ArchiveSink> {
    const tmp = join(dirname(path), `.${basename(path)}.${privateName()}`);
    const file = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
    try {
      await new Promise<void>((resolve, reject) => {
        file.once('open', () => resolve());
        file.once('error', reject);
      });
    } catch (e) {
      throw new S2nError('EUSAGE', `write archive ${path}: ${sysCode(e) === 'ENOENT' ? 'its directory does not exist' : e instanceof Error ? e.message : String(e)}`, {
        hint: 'give a writable file path with -o (or as docker-archive:FILE / oci-archive:FILE)',
        cause: e,
        context: { path },
      });
    }
    const sink = new ArchiveSink(path, format, tmp, file);
    await sink.start();
    return sink;
  }

  async has(desc: Descriptor): Promise<boolean> {
    return this.written.has(desc.digest);
  }

  /** Appends blobs/<alg>/<hex>, verified on the way; one entry at a time (tar is sequential). */
  async put(desc: Descriptor, data: Readable, opts: PutOptions = {}): Promise<void> {
    const name = blobName(desc.digest);
    const run = async (): Promise<void> => {
      if (this.written.has(desc.digest)) {
        data.destroy();
        return;
      }
      const count = new Transform({
        transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
          opts.onBytes?.(chunk.length);
          cb(null, chunk);
        },
      });
      const entry = this.pack.entry({ name, size: desc.size, mode: 0o644, mtime: MTIME, type: 'file' });
      try {
        await pipeline(data, verifyStream(desc), count, entry, opts.signal ? { signal: opts.signal } : {});
      } catch (e) {
        data.destroy();
        // The tar now holds a partial entry: nothing more can be written to it.
        this.failed ??= e;
        throw e;
      }
      this.written.add(desc.digest);
    };
    await this.serialised(run);
  }

  async finish(names: string[], result: CopyResult): Promise<void> {
    this.images.push({ names, result });
  }

  /** Writes the index files and the end marker, then renames the archive into place. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.serialised(async () => {
        await this.entry('index.json', Buffer.from(JSON.stringify(this.index())));
        if (this.format === 'docker-archive') {
          await this.entry('manifest.json', Buffer.from(JSON.stringify(this.dockerManifest())));
          await this.entry('repositories', Buffer.from(JSON.stringify(this.repositories())));
        }
      });
      this.closed = true;
      this.pack.finalize();
      await this.done;
      if (this.failed !== undefined) throw this.failed;
      if (this.tmp !== undefined) await rename(this.tmp, this.path);
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  async abort(): Promise<void> {
    this.closed = true;
    this.pack.destroy();
    await this.done.catch(() => {});
    if (this.tmp !== undefined) await unlink(this.tmp).catch(() => {});
  }

  private async serialised(fn: () => Promise<void>): Promise<void> {
    const next = this.queue.then(async () => {
      if (this.failed !== undefined) throw this.failed;
      await fn();
    });
    this.queue = next.catch(() => {});
    await next;
  }

  private async entry(name: string, bytes: Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pack.entry({ name, size: bytes.length, mode: 0o644, mtime: MTIME, type: 'file' }, bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  private async dir(name: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pack.entry({ name, mode: 0o755, mtime: MTIME, type: 'directory' }, (err) => (err ? reject(err) : resolve()));
    });
  }

  private index(): ImageIndex {
    const manifests: Descriptor[] = [];
    for (const { names, result } of this.images) {
      const d = result.manifestDesc;
      const base: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.platform ? { platform: d.platform } : {}) };
      if (names.length === 0) manifests.push(base);
      for (const n of names) {
        const annotations: Record<string, string> = {};
        if (fullName(n) !== undefined) annotations[CONTAINERD_IMAGE_NAME] = n;
        if (isValidRefName(n)) annotations[Annotation.refName] = n;
        manifests.push({ ...base, annotations });
      }
    }
    return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
  }

  private dockerManifest(): Array<{ Config: string; RepoTags: string[]; Layers: string[] }> {
    return this.images.map(({ names, result }) => ({
      Config: blobName(result.configDesc.digest),
      RepoTags: repoTags(names),
      Layers: result.manifest.layers.map((l) => blobName(l.digest)),
    }));
  }

  /** The legacy `repositories` file: repository → tag → top layer id. */
  private repositories(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const { names, result } of this.images) {
      const top = result.manifest.layers.at(-1);
      if (!top) continue;
      for (const t of repoTags(names)) {
        const at = t.lastIndexOf(':');
        (out[t.slice(0, at)] ??= {})[t.slice(at + 1)] = parseDigest(top.digest).hex;
      }
    }
    return out;
  }
}

/** RepoTags in docker's familiar form (`alpine:latest`); digest-only names have no place there. */
function repoTags(names: string[]): string[] {
  const out: string[] = [];
  for (const n of names) {
    const r = fullName(n);
    if (r?.tag === undefined) continue;
    const { digest: _digest, ...tagOnly } = r;
    out.push(familiarReference(tagOnly));
  }
  return out;
}

/**
 * A name that is a full reference with a repository (`localhost/app:1`), not
 * a bare ref name like `latest` that only an OCI layout's ref.name can hold.
 */
function fullName(n: string): Reference | undefined {
  if (!/[/:]/.test(n)) return undefined;
  try {
    return parseReference(n);
  } catch {
    return undefined;
  }
}

/**
 * Copies `src` into `dest` without ending it (stdout stays usable and is
 * not closed), honouring back-pressure; resolves once the last write is
 * flushed, rejects on an error of either (EPIPE when the reader went away).
 */
async function pumpInto(src: AsyncIterable<Buffer>, dest: NodeJS.WritableStream): Promise<void> {
  let onError: (e: unknown) => void = () => {};
  const failed = new Promise<never>((_r, reject) => (onError = reject));
  failed.catch(() => {});
  // Left attached: a late EPIPE must not become an uncaught 'error'.
  dest.on('error', onError);
  {
    const write = (chunk: Buffer): Promise<void> =>
      Promise.race([
        failed,
        new Promise<void>((resolve, reject) => {
          dest.write(chunk, (e) => (e ? reject(e) : resolve()));
        }),
      ]);
    let pending: Promise<void> = Promise.resolve();
    for await (const chunk of src) {
      const w = write(chunk);
      w.catch(() => {});
      // One write in flight at a time beyond the buffer: wait for the previous one.
      await pending;
      pending = w;
    }
    await pending;
  }
}
