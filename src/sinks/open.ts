/**
 * Destinations for `copy`: the ImageSink for a location (see
 * sources/open.ts for the naming). The store and an `oci:DIR` layout are
 * ContentStores (the store is an OCI layout; a new DIR gets the store's own
 * ingest/, locks/ and leases/ folders too); their finish() tags the image.
 */
import type { CopyResult } from '../copy.js';
import { Annotation } from '../oci/types.js';
import type { ImageLocation } from '../sources/open.js';
import type { ImageSink } from '../sources/source.js';
import { ContentStore } from '../store/store.js';
import type { Reference } from '../oci/reference.js';
import { ArchiveSink } from './archive.js';
import { RegistrySink, type RegistrySinkOptions } from './registry.js';

export interface OpenedSink {
  sink: ImageSink;
  /** The store written to, when there is one: the copy runs inside its lease. */
  store?: ContentStore;
  /** Blobs written at once (1 for a tar, which is sequential). */
  concurrency?: number;
}

export interface OpenSinkOptions {
  store?: () => Promise<ContentStore>;
  registry?: RegistrySinkOptions;
}

/** A ContentStore as a sink whose finish() names the image (by its digest when there is no name). */
export function storeSink(store: ContentStore): ImageSink {
  return {
    has: (desc) => store.has(desc),
    put: (desc, data, opts) => store.put(desc, data, opts),
    finish: async (names: string[], r: CopyResult) => {
      const extra: Record<string, string> = r.index ? { [Annotation.indexDigest]: r.index.digest } : {};
      for (const n of names.length > 0 ? names : [r.manifestDesc.digest]) await store.tag(n, r.manifestDesc, extra);
    },
  };
}

export async function openSink(loc: ImageLocation, o: OpenSinkOptions = {}): Promise<OpenedSink> {
  switch (loc.transport) {
    case 'docker':
      return { sink: new RegistrySink(loc.reference as Reference, o.registry ?? {}) };
    case 'store': {
      if (!o.store) throw new Error('openSink: no store');
      const store = await o.store();
      return { sink: storeSink(store), store };
    }
    case 'oci': {
      const store = await ContentStore.open(loc.path as string);
      return { sink: storeSink(store), store };
    }
    case 'docker-archive':
    case 'oci-archive':
      return { sink: await ArchiveSink.create(loc.path as string, loc.transport), concurrency: 1 };
  }
}
