/**
 * `copy SRC DST`: one image from any location to any other (see
 * sources/open.ts for the names), through the copy engine. Both locations are
 * parsed before anything is opened, so a bad destination costs nothing.
 * Within one registry, blobs are mounted from the source repository instead
 * of being downloaded and uploaded again.
 */
import { copyImage, type CopyEvent, type CopyResult } from './copy.js';
import { formatReference, parseReference } from './oci/reference.js';
import type { Platform } from './oci/types.js';
import { openSink } from './sinks/open.js';
import { openSource, parseLocation, type ImageLocation } from './sources/open.js';
import type { RegistryClientOptions } from './sources/registry/client.js';
import type { ContentStore } from './store/store.js';

export interface TransferOptions {
  store?: () => Promise<ContentStore>;
  registry?: RegistryClientOptions;
  platform?: Platform;
  concurrency?: number;
  onEvent?: (e: CopyEvent) => void;
  signal?: AbortSignal;
}

export interface TransferResult extends CopyResult {
  source: string;
  destination: string;
  /** The names the destination holds the image under. */
  names: string[];
}

function normalised(ref: string): string | undefined {
  try {
    return formatReference(parseReference(ref));
  } catch {
    return undefined;
  }
}

/** The names the image gets at `dst`: its own REF, else the source's name (for archives), else none. */
function destinationNames(src: ImageLocation, dst: ImageLocation): string[] {
  if (dst.transport === 'docker') return dst.reference?.tag !== undefined ? [formatReference(dst.reference)] : [];
  if (dst.ref !== undefined) {
    if (dst.transport === 'store' || dst.transport === 'docker-archive') return [normalised(dst.ref) ?? dst.ref];
    return [dst.ref];
  }
  const fromSource = src.transport === 'docker' || src.transport === 'store' || src.transport === 'docker-archive' ? src.ref : undefined;
  const n = fromSource !== undefined ? normalised(fromSource) : undefined;
  return n !== undefined && parseReference(n).tag !== undefined ? [n] : [];
}

export async function transferImage(srcInput: string, dstInput: string, o: TransferOptions = {}): Promise<TransferResult> {
  const srcLoc = parseLocation(srcInput);
  const dstLoc = parseLocation(dstInput);
  const names = destinationNames(srcLoc, dstLoc);
  const source = await openSource(srcLoc, { ...(o.store ? { store: o.store } : {}), registry: o.registry ?? {} });
  try {
    const sameRegistry = srcLoc.transport === 'docker' && dstLoc.transport === 'docker' && srcLoc.reference?.registry === dstLoc.reference?.registry;
    const { sink, store, concurrency } = await openSink(dstLoc, {
      ...(o.store ? { store: o.store } : {}),
      registry: { ...o.registry, ...(sameRegistry && srcLoc.reference ? { mountFrom: srcLoc.reference.repository } : {}) },
    });
    const run = async (): Promise<TransferResult> => {
      try {
        const r = await copyImage(source, sink, {
          ...(o.platform ? { platform: o.platform } : {}),
          ...(concurrency ?? o.concurrency ? { concurrency: concurrency ?? o.concurrency } : {}),
          ...(o.onEvent ? { onEvent: o.onEvent } : {}),
          ...(o.signal ? { signal: o.signal } : {}),
        });
        await sink.finish?.(names, r);
        await sink.close?.();
        return { ...r, source: source.description, destination: dstInput, names };
      } catch (e) {
        await (sink.abort ? sink.abort() : sink.close?.());
        throw e;
      }
    };
    return store ? await store.withLease(run) : await run();
  } finally {
    await source.close?.();
  }
}
