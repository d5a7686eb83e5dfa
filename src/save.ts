/**
 * `save`: images of the store into one docker-archive or oci-archive, through
 * the copy engine with the store as source and an ArchiveSink (see
 * sinks/archive.ts for the formats and why blobs stay compressed).
 */
import { copyImage, type CopyEvent } from './copy.js';
import { S2nError } from './errors.js';
import type { Digest, Platform } from './oci/types.js';
import { ArchiveSink, type ArchiveFormat } from './sinks/archive.js';
import { isNamedReference, storeNameOf } from './store/find.js';
import type { ContentStore } from './store/store.js';

export { isNamedReference, storeNameOf };

export interface SaveOptions {
  format?: ArchiveFormat;
  platform?: Platform;
  onEvent?: (e: CopyEvent) => void;
  signal?: AbortSignal;
  /** Write the archive to this stream (left open) instead of `path`, which then only names it ('-'). */
  stream?: NodeJS.WritableStream;
}

export interface SavedImage {
  /** The store name it was saved from (and is named by in the archive). */
  name: string;
  digest: Digest;
}

export interface SaveResult {
  path: string;
  format: ArchiveFormat;
  images: SavedImage[];
}

export async function saveImages(store: ContentStore, refs: string[], path: string, opts: SaveOptions = {}): Promise<SaveResult> {
  if (refs.length === 0) throw new S2nError('EUSAGE', 'save: no image given', { hint: 'usage: s2n-oci save REF… -o FILE' });
  const format = opts.format ?? 'docker-archive';
  const names: string[] = [];
  for (const r of refs) {
    const n = await storeNameOf(store, r);
    if (!names.includes(n)) names.push(n);
  }
  // A lease keeps prune from removing blobs while they are read.
  return store.withLease(async () => {
    const sink = opts.stream ? await ArchiveSink.toStream(opts.stream, format, path) : await ArchiveSink.create(path, format);
    const images: SavedImage[] = [];
    try {
      for (const name of names) {
        const src = store.source(name);
        const r = await copyImage(src, sink, {
          concurrency: 1,
          ...(opts.platform ? { platform: opts.platform } : {}),
          ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        await sink.finish(isNamedReference(name) ? [name] : [], r);
        images.push({ name, digest: r.manifestDesc.digest });
      }
      await sink.close();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    return { path, format, images };
  });
}
