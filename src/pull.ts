import { copyImage, type CopyEvent, type CopyResult } from './copy.js';
import { formatReference, parseReference, type Reference } from './oci/reference.js';
import { Annotation, type Platform } from './oci/types.js';
import { openRegistrySource, type RegistrySourceOptions } from './sources/registry/source.js';
import type { ContentStore } from './store/store.js';

export interface PullOptions {
  platform?: Platform;
  concurrency?: number;
  onEvent?: (e: CopyEvent) => void;
  signal?: AbortSignal;
  registry?: RegistrySourceOptions;
}

export interface PullResult extends CopyResult {
  reference: Reference;
  /** The name the image is stored under. */
  name: string;
}

/** Pull one image from its registry into the store and name it. */
export async function pullImage(store: ContentStore, input: string, opts: PullOptions = {}): Promise<PullResult> {
  const reference = parseReference(input);
  const source = openRegistrySource(reference, opts.registry ?? {});
  try {
    // The lease keeps `prune` from collecting blobs between their commit and the tag below.
    return await store.withLease(async () => {
      const result = await copyImage(source, store, {
        ...(opts.platform ? { platform: opts.platform } : {}),
        ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
        ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const name = formatReference(reference);
      await store.tag(name, result.manifestDesc, result.index ? { [Annotation.indexDigest]: result.index.digest } : {});
      return { ...result, reference, name };
    });
  } finally {
    await source.close?.();
  }
}
