/**
 * `load`: images from a `docker save` archive, an oci-archive, an OCI layout
 * directory, gzip- or zstd-compressed or on stdin, into the store, named.
 *
 * All or nothing per call: every image is first copied to a sink that only
 * verifies (a dry run of the copy engine: manifests, configs, platform,
 * every blob's size and digest, a docker layer against its diff_id), and
 * only when all of them pass is anything written, inside a lease, and
 * named. A hostile or broken archive therefore leaves the store exactly as
 * it was. Blobs the store already has are skipped in both passes, so
 * loading an archive again reads only its JSON.
 */
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { copyImage, type CopyEvent, type CopyResult } from './copy.js';
import { S2nError } from './errors.js';
import { formatReference, parseReference } from './oci/reference.js';
import { Annotation, type Descriptor, type Digest, type Platform } from './oci/types.js';
import { verifyStream } from './oci/verify.js';
import { openArchive } from './sources/archive/open.js';
import type { ArchiveReader } from './sources/archive/reader.js';
import { archiveError } from './sources/archive/tar-format.js';
import { DockerArchive, isDockerArchive } from './sources/docker-archive.js';
import { OciLayout, isOciLayout } from './sources/oci-layout.js';
import type { ImageSink, ImageSource, PutOptions } from './sources/source.js';
import { privateName } from './store/fsutil.js';
import type { ContentStore } from './store/store.js';

export type ArchiveFormat = 'docker-archive' | 'oci-layout';

export interface LoadOptions {
  /** Names for the loaded image, replacing the archive's own; only when one image is loaded. */
  tags?: string[];
  /** Load only this image of the archive: one of its names (as written or normalised). */
  image?: string;
  /** Platform to pick where an image is an index (OCI layouts); the host's by default. */
  platform?: Platform;
  concurrency?: number;
  onEvent?: (e: CopyEvent) => void;
  signal?: AbortSignal;
  /** What `-` reads (the CLI passes process.stdin). */
  stdin?: Readable;
  /** zstd program used when Node has no zstd decoder (tests). */
  zstdProgram?: string;
}

export interface LoadedImage {
  /** Full references it is stored under; empty for an image without a name (then stored under its digest). */
  names: string[];
  /** names[0], or null for an untagged image. */
  name: string | null;
  /** Manifest digest: what `images` shows as DIGEST and what an untagged image is stored as. */
  digest: Digest;
  mediaType: string;
  /** Config digest (docker's image ID). */
  config: Digest;
  /** The index the manifest was picked from, for OCI layout entries that are indexes. */
  index?: Digest;
  /** Where it came from, e.g. `docker-archive:app.tar:app:1`. */
  source: string;
}

export interface LoadResult {
  format: ArchiveFormat;
  images: LoadedImage[];
}

/** A source with the archive sources' extra: can it vouch for a blob without reading it? */
type ArchiveSource = ImageSource & { contentMatches(desc: Descriptor): Promise<boolean> };

interface PlannedImage {
  source: ArchiveSource;
  /** Names as the archive writes them (RepoTags, ref.name). */
  rawNames: string[];
  /** Normalised names to store it under. */
  names: string[];
}

/**
 * Loads `input` (a path, or `-` for opts.stdin) into `store`. Throws
 * EARCHIVE/EUNSAFEPATH/EDIGEST/… with the store unchanged when any image is
 * broken; EUSAGE for options that do not fit the archive.
 */
export async function loadArchive(store: ContentStore, input: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const tags = (opts.tags ?? []).map(normaliseTag);
  const reader = await openArchive(input, {
    spoolPath: () => join(store.ingestDir, privateName()),
    ...(opts.stdin ? { stdin: opts.stdin } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.zstdProgram ? { zstdProgram: opts.zstdProgram } : {}),
  });
  try {
    const { format, images } = await planImages(reader, opts.image);
    if (tags.length > 0 && images.length > 1) {
      throw new S2nError('EUSAGE', `load ${reader.description}: --tag names one image, but the archive holds ${images.length}`, {
        hint: 'choose the image to load by one of its names, e.g. `s2n-oci load -i FILE --tag NEW NAME`',
        context: { archive: reader.description, names: images.flatMap((i) => i.rawNames) },
      });
    }
    const copyOpts = {
      ...(opts.platform ? { platform: opts.platform } : {}),
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    // The lease keeps GC away from the first pass on (a blob it skips because the store has it must still be there
    // for the second) until the names are in.
    return await store.withLease(async () => {
      // Pass 1: everything checked, nothing written.
      for (const img of images) await copyImage(img.source, verifyOnlySink(store, img.source), copyOpts);
      // Pass 2: written and named.
      const results: Array<{ img: PlannedImage; r: CopyResult }> = [];
      for (const img of images) {
        results.push({ img, r: await copyImage(img.source, store, { ...copyOpts, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) }) });
      }
      const loaded: LoadedImage[] = [];
      for (const { img, r } of results) {
        const names = tags.length > 0 ? tags : img.names;
        const extra: Record<string, string> = r.index ? { [Annotation.indexDigest]: r.index.digest } : {};
        const digest = r.manifestDesc.digest;
        for (const n of names) await store.tag(n, r.manifestDesc, extra);
        if (names.length > 0) {
          // Named now: drop the by-digest entry an earlier load of it without a name left.
          if (await store.resolveName(digest)) await store.untag(digest);
        } else if (!(await store.list()).some((e) => e.descriptor.digest === digest)) {
          // Without any name GC would collect it: keep it under its digest (`images` shows <none>).
          await store.tag(digest, r.manifestDesc, extra);
        }
        loaded.push({
          names,
          name: names[0] ?? null,
          digest,
          mediaType: r.manifestDesc.mediaType,
          config: r.configDesc.digest,
          ...(r.index ? { index: r.index.digest } : {}),
          source: img.source.description,
        });
      }
      return { format, images: loaded };
    });
  } finally {
    await reader.close();
  }
}

function normaliseTag(t: string): string {
  const ref = parseReference(t);
  if (ref.digest !== undefined) {
    throw new S2nError('EUSAGE', `load: --tag ${t} has a digest; a tag names the image, its digest is its own`, {
      hint: 'give NAME[:TAG], e.g. --tag localhost/app:1',
      context: { reference: t },
    });
  }
  return formatReference(ref);
}

/** The images to load, by format (judged by content: manifest.json → docker save; oci-layout + index.json → OCI layout). */
async function planImages(reader: ArchiveReader, selector: string | undefined): Promise<{ format: ArchiveFormat; images: PlannedImage[] }> {
  let format: ArchiveFormat;
  let all: PlannedImage[];
  if (await isDockerArchive(reader)) {
    format = 'docker-archive';
    const archive = await DockerArchive.open(reader);
    all = archive.listImages().map((i) => ({
      source: archive.source(i.index),
      rawNames: i.repoTags,
      names: i.repoTags.map((t) => archiveName(reader, t, `manifest.json names image ${i.index}`)),
    }));
  } else if (await isOciLayout(reader)) {
    format = 'oci-layout';
    const layout = await OciLayout.open(reader);
    all = layout.listImages().map((i) => {
      const raw = [i.imageName, i.refName].filter((n): n is string => n !== undefined);
      let names: string[] = [];
      if (i.imageName !== undefined) names = [archiveName(reader, i.imageName, `index.json names image ${i.index}`)];
      // A ref.name that is only a tag (`latest`, skopeo's `oci-archive:FILE:TAG`) names no repository: the image is loaded untagged.
      else if (i.refName !== undefined && /[/:@]/.test(i.refName)) names = [archiveName(reader, i.refName, `index.json names image ${i.index}`)];
      return { source: layout.source(i.index), rawNames: raw, names };
    });
  } else if (await reader.stat('repositories')) {
    throw archiveError(reader.description, 'it is a docker save archive of Docker before 1.10 (no manifest.json), which is not supported');
  } else {
    throw archiveError(reader.description, 'it is neither a docker save archive (no manifest.json) nor an OCI layout (no oci-layout and index.json)');
  }
  if (selector === undefined) return { format, images: all };
  const want = normalisedOrUndefined(selector);
  const picked = all.filter((i) => i.rawNames.includes(selector) || (want !== undefined && i.names.includes(want)));
  const first = picked[0];
  if (!first) {
    const names = all.flatMap((i) => i.rawNames);
    throw new S2nError('EIMAGE', `load ${reader.description}: the archive holds no image named ${selector}`, {
      hint: names.length > 0 ? `it holds: ${names.join(', ')}` : `it holds ${all.length} image(s) without names`,
      context: { archive: reader.description, selector, names },
    });
  }
  return { format, images: [first] };
}

function archiveName(reader: ArchiveReader, raw: string, what: string): string {
  try {
    return formatReference(parseReference(raw));
  } catch (e) {
    throw archiveError(reader.description, `${what} "${raw}", which is not a valid image reference`, {
      name: raw,
      cause: e instanceof Error ? e.message : String(e),
    });
  }
}

function normalisedOrUndefined(name: string): string | undefined {
  try {
    return formatReference(parseReference(name));
  } catch {
    return undefined;
  }
}

/**
 * A sink that writes nothing: put() reads and verifies (size, digest). What
 * the store already has, or what the archive reader already hashed while
 * streaming, counts as present and is not read again.
 */
function verifyOnlySink(store: ContentStore, source: ArchiveSource): ImageSink {
  return {
    has: async (desc) => (await store.has(desc)) || (await source.contentMatches(desc)),
    put: async (desc: Descriptor, data: Readable, opts: PutOptions = {}) => {
      const discard = new Writable({
        write(_chunk, _enc, cb) {
          cb();
        },
      });
      try {
        await pipeline(data, verifyStream(desc), discard, opts.signal ? { signal: opts.signal } : {});
      } catch (e) {
        data.destroy();
        throw e;
      }
    },
  };
}
