import { defaultMaxListeners, setMaxListeners } from 'node:events';
import { Readable } from 'node:stream';
import { S2nError } from './errors.js';
import { Limits } from './oci/limits.js';
import { MediaType, isIndexType } from './oci/mediatypes.js';
import { hostPlatform, selectManifest } from './oci/platform.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from './oci/types.js';
import { validateImageConfig } from './oci/validate.js';
import { parseManifestBlob } from './oci/validate.js';
import { readVerified } from './oci/verify.js';
import type { ImageSink, ImageSource } from './sources/source.js';


export type BlobKind = 'config' | 'layer';

export type CopyEvent =
  | { type: 'resolved'; source: string; root: Descriptor }
  | { type: 'manifest'; manifest: Descriptor; platform?: Platform; layers: Descriptor[] }
  | { type: 'blob-start'; kind: BlobKind; digest: string; size: number }
  | { type: 'blob-progress'; kind: BlobKind; digest: string; bytes: number; size: number }
  | { type: 'blob-done'; kind: BlobKind; digest: string; size: number; existed: boolean };

export interface CopyOptions {
  /** Wanted platform when the root is an index; the host's by default. */
  platform?: Platform;
  /** Blobs copied at once. */
  concurrency?: number;
  onEvent?: (e: CopyEvent) => void;
  signal?: AbortSignal;
}

export interface CopyResult {
  /** What the source resolved to (an index or the manifest itself). */
  root: Descriptor;
  /** The index the manifest was chosen from, when there was one. */
  index?: Descriptor;
  manifestDesc: Descriptor;
  manifest: ImageManifest;
  configDesc: Descriptor;
  config: ImageConfig;
}

const configTypes = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);
const uncompressedLayerTypes = new Set<string>([MediaType.ociLayer, MediaType.ociLayerNondistributable]);
const layerTypes = new Set<string>([
  MediaType.ociLayer,
  MediaType.ociLayerGzip,
  MediaType.ociLayerZstd,
  MediaType.ociLayerNondistributable,
  MediaType.ociLayerNondistributableGzip,
  MediaType.ociLayerNondistributableZstd,
  MediaType.dockerLayerGzip,
  MediaType.dockerLayerForeignGzip,
]);

/**
 * The one copy engine between any source and any sink: index → manifest →
 * config + layers. Every blob is verified by the sink against its descriptor;
 * JSON documents are verified here before they are parsed. The manifest is
 * written last, so a sink never holds a manifest whose blobs are missing.
 */
export async function copyImage(src: ImageSource, dst: ImageSink, opts: CopyOptions = {}): Promise<CopyResult> {
  // An 'abort' listener never hears a signal that fired before it was added.
  opts.signal?.throwIfAborted();
  const emit = opts.onEvent ?? (() => {});
  const want = opts.platform ?? hostPlatform();
  const budget = { left: Limits.totalJsonBytes };
  // One failed layer stops the others instead of letting them download for nothing.
  const abort = new AbortController();
  const onOuterAbort = (): void => abort.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const fetchOpts = { signal: abort.signal };
  const concurrency = Math.max(1, opts.concurrency ?? 3);
  // Bounded, not leaked: one listener per blob under way (see copyBlob) and one per other request.
  setMaxListeners(Math.max(defaultMaxListeners, concurrency + 2), abort.signal);
  try {
    return await copyWith(src, dst, { emit, want, budget, abort, fetchOpts, concurrency });
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}

interface CopyState {
  emit: (e: CopyEvent) => void;
  want: Platform;
  budget: { left: number };
  abort: AbortController;
  fetchOpts: { signal: AbortSignal };
  concurrency: number;
}

async function copyWith(src: ImageSource, dst: ImageSink, state: CopyState): Promise<CopyResult> {
  const { emit, want, budget, abort, fetchOpts } = state;

  const readJson = async (desc: Descriptor, max: number, what: string): Promise<Buffer> => {
    if (desc.size > budget.left) {
      throw new S2nError('ELIMIT', `read ${what} ${desc.digest}: the image's JSON documents exceed ${Limits.totalJsonBytes} bytes`, {
        hint: 'the image is unusually large or hostile; check its source',
        context: { digest: desc.digest, size: desc.size, source: src.description },
      });
    }
    const stream = await src.fetch(desc, fetchOpts);
    const bytes = await readVerified(stream, desc, max);
    budget.left -= bytes.length;
    return bytes;
  };

  const root = await src.resolve(fetchOpts);
  emit({ type: 'resolved', source: src.description, root });

  let manifestDesc = root;
  let index: Descriptor | undefined;
  let manifest: ImageManifest | undefined;
  let manifestBytes: Buffer = Buffer.alloc(0);
  for (let depth = 0; manifest === undefined; depth++) {
    manifestBytes = await readJson(manifestDesc, Limits.manifestBytes, 'manifest');
    const parsed = parseManifestBlob(manifestBytes, manifestDesc, { reference: src.description });
    if (parsed.kind === 'manifest') {
      manifest = parsed.manifest;
      break;
    }
    if (depth >= Limits.indexDepth) {
      throw new S2nError('EMANIFEST', `read index ${manifestDesc.digest}: indexes nested deeper than ${Limits.indexDepth} levels`, {
        hint: 'the image is malformed; ask its publisher',
        context: { digest: manifestDesc.digest, source: src.description },
      });
    }
    index ??= manifestDesc;
    manifestDesc = pickChild(parsed.index, want, src.description);
  }

  // A manifest carries no media type in the descriptor when it was the root of a source that
  // did not know it; take it from the document so the store records what it is.
  if (!manifestDesc.mediaType || isIndexType(manifestDesc.mediaType)) {
    manifestDesc = { ...manifestDesc, mediaType: manifest.mediaType ?? MediaType.ociManifest };
  }
  checkIsImage(manifest, src.description);
  emit({ type: 'manifest', manifest: manifestDesc, ...(manifestDesc.platform ? { platform: manifestDesc.platform } : {}), layers: manifest.layers });

  const configBytes = await readJson(manifest.config, Limits.configBytes, 'config');
  const config = validateImageConfig(parseJson(configBytes, manifest.config, src.description), { what: `config ${manifest.config.digest}` });
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new S2nError('EMANIFEST', `read image ${src.description}: config lists ${config.rootfs.diff_ids.length} layer diff_ids but the manifest has ${manifest.layers.length} layers`, {
      hint: 'the image is malformed; ask its publisher',
      context: { manifest: manifestDesc.digest, config: manifest.config.digest },
    });
  }
  // An uncompressed layer is its own diff: the two digests must agree (compressed ones are checked at unpack).
  manifest.layers.forEach((layer, i) => {
    const diffId = config.rootfs.diff_ids[i];
    if (uncompressedLayerTypes.has(layer.mediaType) && layer.digest !== diffId) {
      throw new S2nError('EMANIFEST', `read image ${src.description}: uncompressed layer ${i} is ${layer.digest} but the config says its diff_id is ${diffId}`, {
        hint: 'the image is malformed; ask its publisher',
        context: { manifest: manifestDesc.digest, layer: layer.digest, diffId },
      });
    }
  });

  const copyBlob = async (desc: Descriptor, kind: BlobKind, bytes?: Buffer): Promise<void> => {
    if (await dst.has(desc)) {
      emit({ type: 'blob-done', kind, digest: desc.digest, size: desc.size, existed: true });
      return;
    }
    emit({ type: 'blob-start', kind, digest: desc.digest, size: desc.size });
    let done = 0;
    // The request and the write each listen for abort until they are done. On a signal of this blob's
    // own they do not add up on the shared one, which holds one listener per blob under way.
    const blobAbort = new AbortController();
    const onAbort = (): void => blobAbort.abort(abort.signal.reason);
    abort.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const blobOpts = { signal: blobAbort.signal };
      const data: Readable = bytes ? readableOf(bytes) : await src.fetch(desc, blobOpts);
      await dst.put(desc, data, {
        ...blobOpts,
        onBytes: (n) => {
          done += n;
          emit({ type: 'blob-progress', kind, digest: desc.digest, bytes: done, size: desc.size });
        },
      });
    } finally {
      abort.signal.removeEventListener('abort', onAbort);
    }
    emit({ type: 'blob-done', kind, digest: desc.digest, size: desc.size, existed: false });
  };

  await runBounded(
    manifest.layers.map((layer) => () => copyBlob(layer, 'layer')),
    state.concurrency,
    (e) => abort.abort(e),
  );
  await copyBlob(manifest.config, 'config', configBytes);
  if (!(await dst.has(manifestDesc))) await dst.put(manifestDesc, readableOf(manifestBytes), fetchOpts);

  return { root, ...(index ? { index } : {}), manifestDesc, manifest, configDesc: manifest.config, config };
}

function pickChild(index: ImageIndex, want: Platform, reference: string): Descriptor {
  return selectManifest(index, want, { reference });
}

function checkIsImage(manifest: ImageManifest, source: string): void {
  if (!configTypes.has(manifest.config.mediaType)) {
    throw new S2nError('EMANIFEST', `read image ${source}: it is not a container image (config type ${manifest.config.mediaType})`, {
      hint: 'this reference holds an OCI artifact; only container images can be pulled and run',
      context: { configMediaType: manifest.config.mediaType, artifactType: manifest.artifactType },
    });
  }
  if (manifest.layers.length > Limits.layers) {
    throw new S2nError('ELIMIT', `read image ${source}: ${manifest.layers.length} layers (at most ${Limits.layers} supported)`, {
      hint: 'the image is unusually deep or hostile; check its source',
    });
  }
  for (const layer of manifest.layers) {
    if (!layerTypes.has(layer.mediaType)) {
      throw new S2nError('EMANIFEST', `read image ${source}: layer ${layer.digest} has unsupported media type ${layer.mediaType}`, {
        hint: 'only tar, tar+gzip and tar+zstd layers are supported',
        context: { digest: layer.digest, mediaType: layer.mediaType },
      });
    }
  }
}

function parseJson(bytes: Buffer, desc: Descriptor, source: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (e) {
    throw new S2nError('EMANIFEST', `parse ${desc.mediaType} ${desc.digest} from ${source}: not valid JSON`, {
      hint: 'the image is malformed; ask its publisher',
      cause: e,
      context: { digest: desc.digest },
    });
  }
}

function readableOf(bytes: Buffer): Readable {
  return Readable.from([bytes]);
}

/**
 * Runs tasks with at most `limit` at once. After the first failure no new task starts,
 * `onFailure` runs (to abort the ones under way), and the first error is thrown once
 * every running task has settled, so nothing is still writing when the caller cleans up.
 */
export async function runBounded(tasks: Array<() => Promise<void>>, limit: number, onFailure: (e: unknown) => void = () => {}): Promise<void> {
  let next = 0;
  let firstError: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (firstError === undefined && next < tasks.length) {
      const task = tasks[next++];
      try {
        if (task) await task();
      } catch (e) {
        if (firstError === undefined) {
          firstError = { error: e };
          onFailure(e);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (firstError !== undefined) throw firstError.error;
}
