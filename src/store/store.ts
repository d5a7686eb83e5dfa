/**
 * The content-addressed store. On disk it is an OCI image layout, so skopeo,
 * umoci and crane can read it (`skopeo inspect oci:ROOT:docker.io/library/alpine:latest`):
 *
 *   oci-layout            {"imageLayoutVersion":"1.0.0"}
 *   index.json            the names: one descriptor per name, see tag()
 *   blobs/<alg>/<hex>     content, only ever complete and verified
 *   ingest/<pid>-<rand>   partial writes and index.json temp files (ours)
 *   locks/                cross-process lock files (ours, see lock.ts)
 *   leases/               one file per running writer (ours, see lease.ts)
 *   rootfs/               reserved for the unpacked-rootfs cache (not here yet)
 *
 * Writers (the copy engine) must call put() and tag() inside withLease():
 * GC only runs while no lease is held, and a blob committed outside a lease
 * could be swept before it is tagged. The store assumes one host: pid
 * liveness decides which leftovers are stale.
 */
import { closeSync, createReadStream, mkdirSync, open as openCb, openSync, readSync } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { S2nError, isS2nError, sysCode } from '../errors.js';
import { isDigest, parseDigest, shortDigest } from '../oci/digest.js';
import { MediaType, blobKind } from '../oci/mediatypes.js';
import { Annotation, type Descriptor, type ImageIndex } from '../oci/types.js';
import { BlobCheck, readSizedSync, readVerifiedSync } from '../oci/verify.js';
import type { FetchOptions, ImageSink, ImageSource, PutOptions } from '../sources/source.js';
import { fsyncDir, privateName, readIfExists, storeIoError, writeNewFile } from './fsutil.js';
import type { GcOptions, GcResult } from './gc.js';
import type { IngestWriter } from './ingest.js';
import type { LeaseOptions } from './lease.js';
import { withLock, type LockOptions } from './lock.js';
// gc.js, ingest.js and lease.js are imported by the methods that write or
// sweep: a reader (a warm `run`, `images`) saves ~3 ms of module loading.

export { defaultStoreRoot } from './root.js';
export type { GcOptions, GcResult } from './gc.js';
export type { LeaseOptions } from './lease.js';

export const LAYOUT_VERSION = '1.0.0';

const openFd = promisify(openCb);

/** What may already sit in a root we are asked to initialise (another process may be creating it right now). */
const OWN_ENTRIES = new Set(['oci-layout', 'index.json', 'blobs', 'ingest', 'locks', 'leases', 'rootfs']);

export interface StoreEntry {
  /** The full reference the image is stored under, e.g. docker.io/library/alpine:latest. */
  name: string;
  descriptor: Descriptor;
}

/**
 * Grammar of org.opencontainers.image.ref.name (image-spec annotations.md);
 * containers/image (skopeo) refuses `oci:` references that do not match it.
 */
const REF_NAME = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;

export function isValidRefName(name: string): boolean {
  return REF_NAME.test(name);
}

/** The name an index.json entry is known by: ours, or a plain ref.name written by another tool. */
function entryName(d: Descriptor | null | undefined): string | undefined {
  if (typeof d !== 'object' || d === null) return undefined;
  const a = d.annotations;
  const name = a?.[Annotation.imageName] ?? a?.[Annotation.refName];
  return typeof name === 'string' ? name : undefined;
}

const REPULL_HINT = 'the store is missing or has a damaged copy of this blob (interrupted pull or manual deletion); pull the image again';

export class ContentStore implements ImageSink {
  readonly root: string;
  readonly indexPath: string;
  readonly blobsDir: string;
  readonly ingestDir: string;
  readonly locksDir: string;
  readonly leasesDir: string;
  readonly indexLockPath: string;
  readonly gcLockPath: string;

  private constructor(root: string) {
    this.root = root;
    this.indexPath = join(root, 'index.json');
    this.blobsDir = join(root, 'blobs');
    this.ingestDir = join(root, 'ingest');
    this.locksDir = join(root, 'locks');
    this.leasesDir = join(root, 'leases');
    this.indexLockPath = join(this.locksDir, 'index.json.lock');
    this.gcLockPath = join(this.locksDir, 'gc.lock');
  }

  /**
   * Opens the store at `root`, creating the layout if missing. Idempotent and
   * safe when several processes create the same fresh root at once: every
   * file is created with link/O_EXCL and "already exists" is fine.
   */
  static async open(root: string): Promise<ContentStore> {
    const store = new ContentStore(resolvePath(root));
    try {
      await store.init();
    } catch (e) {
      throw storeIoError(e, `open store ${store.root}`, store.root);
    }
    return store;
  }

  private async init(): Promise<void> {
    // Synchronous mkdirs: every command opens the store, and these exist after the first.
    mkdirSync(this.root, { recursive: true });
    const layoutPath = join(this.root, 'oci-layout');
    let layout = await readIfExists(layoutPath);
    if (layout === undefined) {
      const foreign = (await readdir(this.root)).filter((n) => !OWN_ENTRIES.has(n) && !n.startsWith('.oci-layout.'));
      if (foreign.length > 0) {
        throw new S2nError('ESTORE', `open store ${this.root}: the directory is not empty and is not an OCI image layout`, {
          hint: 'choose an empty or new directory with --root or S2N_OCI_ROOT',
          context: { path: this.root, entries: foreign.slice(0, 5) },
        });
      }
      await createOnce(layoutPath, `${JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })}\n`, join(this.root, `.oci-layout.${privateName()}`));
      layout = await readFile(layoutPath);
    }
    this.checkLayout(layoutPath, layout);
    for (const d of [join(this.blobsDir, 'sha256'), this.ingestDir, this.locksDir, this.leasesDir]) mkdirSync(d, { recursive: true });
    const emptyIndex: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
    await createOnce(this.indexPath, JSON.stringify(emptyIndex), join(this.ingestDir, privateName()));
  }

  private checkLayout(path: string, content: Buffer): void {
    let version: unknown;
    try {
      version = (JSON.parse(content.toString('utf8')) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    } catch {
      version = undefined;
    }
    if (version !== LAYOUT_VERSION) {
      throw new S2nError(
        'ESTORE',
        `open store ${this.root}: ${typeof version === 'string' ? `image layout version "${version}" is not supported (only ${LAYOUT_VERSION})` : 'oci-layout is not a valid layout marker'}`,
        {
          hint: 'this directory holds something else; choose another store with --root or S2N_OCI_ROOT',
          context: { path, imageLayoutVersion: version },
        },
      );
    }
  }

  // ── blobs ────────────────────────────────────────────────────────────────

  /** `blobs/<alg>/<hex>`; EDIGEST for anything that is not a well-formed digest (no path tricks). */
  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.blobsDir, algorithm, hex);
  }

  /** True when the blob is committed with the descriptor's size (content was verified when it was written). */
  async has(desc: Descriptor): Promise<boolean> {
    try {
      const st = await stat(this.blobPath(desc.digest));
      return st.isFile() && st.size === desc.size;
    } catch (e) {
      if (sysCode(e) === 'ENOENT') return false;
      throw storeIoError(e, `check blob ${shortDigest(desc.digest)}`, this.blobsDir);
    }
  }

  /**
   * Streams `data` into the store, verifying size and digest against `desc`.
   * Bytes go to ingest/<pid>-<rand>, are fsynced, and only then hard-linked to
   * blobs/: the blob name never points at partial or unverified content. A
   * concurrent writer of the same blob winning the link is success. The
   * ingest file is removed whatever happens. Call inside withLease().
   */
  async put(desc: Descriptor, data: Readable, opts: PutOptions = {}): Promise<void> {
    const what = `store ${blobKind(desc.mediaType)} ${shortDigest(desc.digest)}`;
    let finalPath: string;
    let check: BlobCheck;
    try {
      finalPath = this.blobPath(desc.digest);
      check = new BlobCheck(desc);
      opts.signal?.throwIfAborted();
      if (await this.has(desc)) {
        // Already here: do not pull the bytes at all.
        data.destroy();
        return;
      }
    } catch (e) {
      data.destroy();
      throw e;
    }
    const ingest = join(this.ingestDir, privateName());
    let sink: IngestWriter | undefined;
    try {
      const { IngestWriter } = await import('./ingest.js');
      // Opened before the pipeline starts, so the file exists by the time `finally` unlinks it, even on an early error.
      sink = new IngestWriter(await openFd(ingest, 'wx', 0o644), check, opts.onBytes);
      // The sink verifies and fsyncs before it finishes (see ingest.ts).
      await pipeline(data, sink, opts.signal ? { signal: opts.signal } : {});
      await this.commit(ingest, finalPath);
    } catch (e) {
      data.destroy();
      throw storeIoError(e, what, ingest);
    } finally {
      // pipeline settles before a failed sink has closed its file; wait, so nothing writes after put() returns.
      if (sink && !sink.closed) {
        sink.destroy();
        await new Promise((resolve) => sink?.once('close', resolve));
      }
      await unlink(ingest).catch(() => {});
    }
  }

  /** put() for small blobs already in memory (manifests, configs). */
  async putBytes(desc: Descriptor, bytes: Buffer | Uint8Array, opts: PutOptions = {}): Promise<void> {
    await this.put(desc, Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]), opts);
  }

  private async commit(ingest: string, finalPath: string): Promise<void> {
    const dir = join(finalPath, '..');
    for (let attempt = 0; ; attempt++) {
      try {
        await link(ingest, finalPath);
        break;
      } catch (e) {
        const code = sysCode(e);
        if (code === 'EEXIST') return; // same digest, same bytes: someone else committed it first
        if (code === 'ENOENT' && attempt === 0) {
          await mkdir(dir, { recursive: true }); // first blob of another algorithm (sha512)
          continue;
        }
        // File systems without hard links: rename is atomic too, it just replaces an existing (identical) blob.
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK') {
          await rename(ingest, finalPath);
          break;
        }
        throw e;
      }
    }
    await fsyncDir(dir);
  }

  /**
   * A read stream of a stored blob (unverified; readBlob verifies). Opens the
   * file at once, so a missing blob throws ESTORE here, not later in the stream.
   */
  open(descOrDigest: Descriptor | string): Readable {
    const digest = typeof descOrDigest === 'string' ? descOrDigest : descOrDigest.digest;
    const path = this.blobPath(digest);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw this.readError(e, digest, path);
    }
    return createReadStream(path, { fd });
  }

  /**
   * The whole blob, checked against `desc`; ELIMIT if its declared size is over `maxBytes`.
   * `verify: false` checks the size only, for a warm run (see store/find.ts).
   */
  async readBlob(desc: Descriptor, maxBytes: number, o: { verify?: boolean } = {}): Promise<Buffer> {
    const path = this.blobPath(desc.digest);
    try {
      // One synchronous read, no stream: these are a few KiB, read on every start.
      const read = (n: number): Buffer => readPrefixSync(path, n);
      return o.verify === false ? readSizedSync(read, desc, maxBytes) : readVerifiedSync(read, desc, maxBytes);
    } catch (e) {
      throw this.readError(e, desc.digest, path);
    }
  }

  private readError(e: unknown, digest: string, path: string): unknown {
    const what = `read blob ${shortDigest(digest)}`;
    if (isS2nError(e)) {
      if (e.code !== 'EDIGEST' && e.code !== 'ESIZE') return e;
      // verify's hint blames the source; here the stored copy is what is wrong.
      return new S2nError(e.code, `${what}: ${e.message}`, { hint: REPULL_HINT, cause: e, context: { ...e.context, path } });
    }
    if (sysCode(e) === 'ENOENT') {
      return new S2nError('ESTORE', `${what}: not in the store`, { hint: REPULL_HINT, cause: e, context: { digest, path } });
    }
    return storeIoError(e, what, path);
  }

  /** Sizes of committed blobs and of partial writes; for `system df`-like output. */
  async diskUsage(): Promise<{ blobs: number; blobBytes: number; ingestBytes: number }> {
    let blobs = 0;
    let blobBytes = 0;
    let ingestBytes = 0;
    const sizes = async (dir: string, each: (size: number) => void): Promise<void> => {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const st = await stat(join(dir, name)).catch(() => undefined);
        if (st?.isFile()) each(st.size);
      }
    };
    for (const alg of await readdir(this.blobsDir).catch(() => [] as string[])) {
      await sizes(join(this.blobsDir, alg), (s) => {
        blobs++;
        blobBytes += s;
      });
    }
    await sizes(this.ingestDir, (s) => (ingestBytes += s));
    return { blobs, blobBytes, ingestBytes };
  }

  // ── names (index.json) ──────────────────────────────────────────────────

  /** index.json as it is now. Missing (deleted by hand) reads as empty; damaged is ESTORE. */
  async readIndex(): Promise<ImageIndex> {
    let text: Buffer | undefined;
    try {
      text = await readIfExists(this.indexPath);
    } catch (e) {
      throw storeIoError(e, 'read store index', this.indexPath);
    }
    if (text === undefined) return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
    let v: unknown;
    try {
      v = JSON.parse(text.toString('utf8'));
    } catch {
      v = undefined;
    }
    const o = v as Partial<ImageIndex> | undefined;
    if (typeof o !== 'object' || o === null || o.schemaVersion !== 2 || !Array.isArray(o.manifests)) {
      throw new S2nError('ESTORE', `read store index ${this.indexPath}: not a valid image index`, {
        hint: `the file was damaged outside s2n-oci; restore it, or move ${this.root} away and pull the images again`,
        context: { path: this.indexPath },
      });
    }
    // Entries other tools wrote in odd shapes are kept on write-back but never used as ours.
    return o as ImageIndex;
  }

  /** Read-modify-write of index.json under the index lock; the write is atomic (temp, fsync, rename). */
  private async updateIndex<T>(what: string, change: (index: ImageIndex) => T, lockOpts: LockOptions = {}): Promise<T> {
    return withLock(
      this.indexLockPath,
      async () => {
        const index = await this.readIndex();
        const result = change(index);
        const tmp = join(this.ingestDir, privateName());
        try {
          await writeNewFile(tmp, JSON.stringify(index));
          await rename(tmp, this.indexPath);
          await fsyncDir(this.root);
        } catch (e) {
          await unlink(tmp).catch(() => {});
          throw storeIoError(e, what, this.indexPath);
        }
        return result;
      },
      { what: 'the store index', ...lockOpts },
    );
  }

  /**
   * Names `desc` (a manifest or an index) as `name`, the full reference
   * (docker.io/library/alpine:latest), replacing what had that name. The
   * entry carries io.s2n-oci.image.name and, when the name fits the
   * image-spec ref grammar (nearly all do), org.opencontainers.image.ref.name,
   * which is what `skopeo … oci:ROOT:NAME` looks up.
   */
  async tag(name: string, desc: Descriptor, extraAnnotations: Record<string, string> = {}): Promise<void> {
    checkName(name);
    parseDigest(desc.digest);
    if (!Number.isSafeInteger(desc.size) || desc.size < 0 || typeof desc.mediaType !== 'string') {
      throw new S2nError('EMANIFEST', `tag ${name}: descriptor of ${shortDigest(desc.digest)} has no valid size or media type`, {
        context: { digest: desc.digest },
      });
    }
    const annotations: Record<string, string> = { ...desc.annotations, ...extraAnnotations, [Annotation.imageName]: name };
    if (isValidRefName(name)) annotations[Annotation.refName] = name;
    else delete annotations[Annotation.refName];
    const entry: Descriptor = {
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      ...(desc.platform ? { platform: desc.platform } : {}),
      ...(desc.artifactType ? { artifactType: desc.artifactType } : {}),
      annotations,
    };
    await this.updateIndex(`tag ${name}`, (index) => {
      // A re-tag keeps the name's place in the list; a new name goes last.
      const at = index.manifests.findIndex((d) => entryName(d) === name);
      index.manifests = index.manifests.filter((d) => entryName(d) !== name);
      if (at >= 0) index.manifests.splice(at, 0, entry);
      else index.manifests.push(entry);
    });
  }

  /** Removes the name; returns what it pointed at (blobs stay until gc). */
  async untag(name: string): Promise<Descriptor | undefined> {
    return this.updateIndex(`untag ${name}`, (index) => {
      const removed = index.manifests.find((d) => entryName(d) === name);
      index.manifests = index.manifests.filter((d) => entryName(d) !== name);
      return removed;
    });
  }

  async resolveName(name: string): Promise<Descriptor | undefined> {
    return (await this.list()).find((e) => e.name === name)?.descriptor;
  }

  /** Every named entry of index.json, in index order. */
  async list(): Promise<StoreEntry[]> {
    const out: StoreEntry[] = [];
    for (const d of (await this.readIndex()).manifests) {
      const name = entryName(d);
      if (name !== undefined && isDigest(d.digest)) out.push({ name, descriptor: d });
    }
    return out;
  }

  /**
   * The named entries whose descriptor digest is `query`: a full digest, or
   * (for `rmi 0123456789ab`) a hex prefix of at least 12 digits with or
   * without `sha256:`. Empty when nothing matches; EIMAGE when a prefix
   * matches more than one digest; EUSAGE when the query is not an id.
   */
  async findByDigest(query: string): Promise<StoreEntry[]> {
    const all = await this.list();
    if (isDigest(query)) return all.filter((e) => e.descriptor.digest === query);
    const m = /^(?:(sha256|sha512):)?([0-9a-f]{12,128})$/.exec(query);
    if (!m?.[2]) {
      throw new S2nError('EUSAGE', `find image ${query}: not a digest or an id of at least 12 hex digits`, {
        hint: 'give a name, a full digest (sha256:…) or at least 12 hex digits of one',
        context: { reference: query },
      });
    }
    const [, alg, hex] = m;
    const matches = all.filter((e) => {
      const p = parseDigest(e.descriptor.digest);
      return (alg === undefined || p.algorithm === alg) && p.hex.startsWith(hex);
    });
    const digests = new Set(matches.map((e) => e.descriptor.digest));
    if (digests.size > 1) {
      throw new S2nError('EIMAGE', `find image ${query}: the id prefix matches ${digests.size} images`, {
        hint: 'give more digits of the digest',
        context: { reference: query, matches: [...digests] },
      });
    }
    return matches;
  }

  // ── leases, GC, reading as a source ─────────────────────────────────────

  /** Runs `fn` as a writer: GC will not run meanwhile (it waits, and we wait for a running GC first). */
  async withLease<T>(fn: () => Promise<T>, opts: LeaseOptions = {}): Promise<T> {
    const { withLease } = await import('./lease.js');
    return withLease(this.leasesDir, this.gcLockPath, fn, opts);
  }

  /** Removes unreferenced blobs and crash leftovers; see gc.ts. Not from inside withLease (it would wait for itself). */
  async gc(opts: GcOptions = {}): Promise<GcResult> {
    const { gc } = await import('./gc.js');
    return gc(this, opts);
  }

  /** The store as an ImageSource for `name` (save, push): resolve → the tagged descriptor, fetch → the blob. */
  source(name: string): ImageSource {
    return {
      description: `store:${name}`,
      resolve: async (opts?: FetchOptions): Promise<Descriptor> => {
        opts?.signal?.throwIfAborted();
        const d = await this.resolveName(name);
        if (!d) {
          throw new S2nError('EIMAGE', `resolve ${name}: image not found in the store`, {
            hint: `pull it first with \`s2n-oci pull ${name}\``,
            context: { reference: name, store: this.root },
          });
        }
        // The names are this store's bookkeeping, not part of the image.
        const annotations = { ...d.annotations };
        delete annotations[Annotation.refName];
        delete annotations[Annotation.imageName];
        const root: Descriptor = { ...d };
        delete root.annotations;
        return Object.keys(annotations).length > 0 ? { ...root, annotations } : root;
      },
      fetch: async (desc: Descriptor, opts?: FetchOptions): Promise<Readable> => {
        opts?.signal?.throwIfAborted();
        return this.open(desc);
      },
    };
  }
}

/** A name is stored verbatim; it must at least be one printable token. */
function checkName(name: string): void {
  if (!/^[\x21-\x7e]{1,1024}$/.test(name)) {
    throw new S2nError('EREFERENCE', `tag ${JSON.stringify(name)}: a stored name must be a non-empty reference without spaces`, {
      context: { reference: name },
    });
  }
}

/** Creates `path` with `content` unless it exists: written to `tmp`, fsynced, linked (EEXIST is fine). */
async function createOnce(path: string, content: string, tmp: string): Promise<void> {
  if ((await readIfExists(path)) !== undefined) return;
  await writeNewFile(tmp, content);
  try {
    await link(tmp, path);
    await fsyncDir(join(path, '..'));
  } catch (e) {
    if (sysCode(e) !== 'EEXIST') throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** The first `max` bytes of a file (all of it when shorter). */
function readPrefixSync(path: string, max: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(max);
    let n = 0;
    for (let got = -1; got !== 0 && n < max; n += got) got = readSync(fd, buf, n, max - n, null);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}
