import type { Readable } from 'node:stream';
import type { CopyResult } from '../copy.js';
import type { Descriptor } from '../oci/types.js';

export interface FetchOptions {
  signal?: AbortSignal;
}

/**
 * Where an image comes from: a registry, a docker-save archive, an OCI layout,
 * the local store. A source only names its root and hands out raw bytes;
 * platform choice, validation and digest verification live once, in copy.ts.
 */
export interface ImageSource {
  /** Human-readable name for messages, e.g. `docker://localhost:5000/app:1`. */
  readonly description: string;
  /** The root descriptor (an index or a manifest) the source was opened for. */
  resolve(opts?: FetchOptions): Promise<Descriptor>;
  /** The raw, unverified bytes of `desc`. The caller verifies them. */
  fetch(desc: Descriptor, opts?: FetchOptions): Promise<Readable>;
  /** Release connections, file handles. */
  close?(): Promise<void>;
}

export interface PutOptions {
  signal?: AbortSignal;
  /** Called with byte counts as they are written (one call may cover several chunks). */
  onBytes?: (n: number) => void;
}

/** Where the copy engine writes: verifies each blob against its descriptor before it is visible. */
export interface ImageSink {
  has(desc: Descriptor): Promise<boolean>;
  /** Streams `data` in, checks size and digest against `desc`, commits atomically; "already exists" is success. */
  put(desc: Descriptor, data: Readable, opts?: PutOptions): Promise<void>;
  /**
   * After copyImage has written an image's blobs and manifest: name it.
   * The store tags it, a registry PUTs the manifest under each tag, an
   * archive records index entries. `names` are full references; empty means
   * "keep it by digest only". Optional: a sink without names has nothing to do.
   */
  finish?(names: string[], result: CopyResult): Promise<void>;
  /** Completes the output (an archive's index files and end marker) and releases resources; after the last finish(). */
  close?(): Promise<void>;
  /** Drops partial output after a failure (an archive file is removed). */
  abort?(): Promise<void>;
}
