/**
 * Verify in the stream, fail at the end: bytes pass through while they are
 * hashed and counted, so a blob is read once and never trusted before its
 * size and digest have been checked against the descriptor that named it.
 */
import type { Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { S2nError } from '../errors.js';
import { nodeCrypto } from '../lazy-crypto.js';
import { parseDigest, shortDigest, type DigestAlgorithm, type ParsedDigest } from './digest.js';
import { blobKind } from './mediatypes.js';
import type { Descriptor, Digest } from './types.js';

/**
 * A running hash and byte count. It can be fed from several streams in turn
 * (a download resumed with HTTP Range keeps one Hasher across requests), and
 * `digest()` can be read at any point without ending it.
 */
export interface Hasher {
  readonly algorithm: DigestAlgorithm;
  /** Bytes hashed so far. */
  readonly bytes: number;
  update(chunk: Uint8Array): void;
  /** The digest of everything so far; hashing may continue afterwards. */
  digest(): Digest;
}

export function createHasher(algorithm: DigestAlgorithm): Hasher {
  const hash: Hash = nodeCrypto().createHash(algorithm);
  let bytes = 0;
  return {
    algorithm,
    get bytes() {
      return bytes;
    },
    update(chunk) {
      hash.update(chunk);
      bytes += chunk.length;
    },
    // copy() so the running hash is not finalised: callers may keep going.
    digest: () => `${algorithm}:${hash.copy().digest('hex')}`,
  };
}

const MISMATCH_HINT =
  'the source sent different content than its manifest promised; try again, or check the registry/archive';

/**
 * Size and digest checks against a descriptor, fed chunk by chunk: what
 * verifyStream, readVerified and the store's ingest writer share. Throws
 * (EDIGEST/ESIZE) at construction if the descriptor cannot be checked.
 */
export class BlobCheck {
  private readonly hasher: Hasher;
  private readonly expected: ParsedDigest;
  readonly what: string;

  constructor(readonly desc: Descriptor) {
    this.what = `${blobKind(desc.mediaType)} ${shortDigest(desc.digest)}`;
    try {
      this.expected = parseDigest(desc.digest);
    } catch (e) {
      throw e instanceof S2nError ? e.withPrefix(`verify ${this.what}`) : e;
    }
    checkByteCount(desc, this.what);
    this.hasher = createHasher(this.expected.algorithm);
  }

  get bytes(): number {
    return this.hasher.bytes;
  }

  /** Hash a chunk; an error as soon as the blob grows past its declared size. */
  add(chunk: Uint8Array): S2nError | undefined {
    this.hasher.update(chunk);
    if (this.hasher.bytes > this.desc.size) {
      return this.sizeError(`got at least ${this.hasher.bytes} bytes, expected ${this.desc.size}`);
    }
    return undefined;
  }

  /** At end of input: the size must be exact and the digest must match. */
  finish(): S2nError | undefined {
    const got = this.hasher.bytes;
    if (got !== this.desc.size) return this.sizeError(`got ${got} bytes, expected ${this.desc.size}`);
    const actual = this.hasher.digest();
    if (actual !== this.desc.digest) {
      return new S2nError('EDIGEST', `verify ${this.what}: content has digest ${shortDigest(actual)}, expected ${shortDigest(this.desc.digest)}`, {
        hint: MISMATCH_HINT,
        context: { digest: this.desc.digest, expected: this.desc.digest, actual, expectedSize: this.desc.size, actualSize: got },
      });
    }
    return undefined;
  }

  private sizeError(detail: string): S2nError {
    return new S2nError('ESIZE', `verify ${this.what}: ${detail}`, {
      hint: MISMATCH_HINT,
      context: { digest: this.desc.digest, expected: this.desc.size, actual: this.hasher.bytes, expectedSize: this.desc.size, actualSize: this.hasher.bytes },
    });
  }
}

/**
 * A pass-through that errors with ESIZE as soon as more than `desc.size`
 * bytes arrive, and at the end with ESIZE (short) or EDIGEST (mismatch).
 * Throws at once (EDIGEST/ESIZE) if the descriptor itself cannot be checked.
 */
export function verifyStream(desc: Descriptor): Transform {
  const check = new BlobCheck(desc);
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      const err = check.add(chunk);
      // The overflowing chunk is not passed on: nothing past the declared size leaves.
      if (err) cb(err);
      else cb(null, chunk);
    },
    flush(cb: TransformCallback) {
      cb(check.finish() ?? null);
    },
  });
}

/**
 * Read a small blob (manifest, index, config) whole, checking size and digest.
 * Refuses with ELIMIT before reading when the descriptor says it is larger
 * than `maxBytes`, so a hostile size cannot make us buffer without bound.
 */
export async function readVerified(stream: Readable, desc: Descriptor, maxBytes: number): Promise<Buffer<ArrayBuffer>> {
  let check: BlobCheck;
  try {
    check = smallBlobCheck(desc, maxBytes);
  } catch (e) {
    stream.destroy();
    throw e;
  }
  const chunks: Buffer[] = [];
  // Leaving the loop early (throw) destroys the stream, releasing its connection or file.
  for await (const raw of stream as AsyncIterable<Buffer | string>) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    const err = check.add(chunk);
    if (err) throw err;
    chunks.push(chunk);
  }
  const err = check.finish();
  if (err) throw err;
  return Buffer.concat(chunks, check.bytes);
}

/**
 * readVerified for a blob read in one call: `read(n)` returns its first n
 * bytes (all of it when shorter). It is asked for one byte more than
 * declared, enough to tell a longer blob, and only once the descriptor has
 * passed the checks above.
 */
export function readVerifiedSync(read: (n: number) => Buffer, desc: Descriptor, maxBytes: number): Buffer {
  const check = smallBlobCheck(desc, maxBytes);
  const bytes = read(desc.size + 1);
  const err = check.add(bytes) ?? check.finish();
  if (err) throw err;
  return bytes;
}

/**
 * readVerifiedSync for content that was verified when it was stored: the
 * size must match exactly, the digest is not recomputed. For the store's
 * re-reads on a warm `run` (see store/find.ts).
 */
export function readSizedSync(read: (n: number) => Buffer, desc: Descriptor, maxBytes: number): Buffer {
  const what = `${blobKind(desc.mediaType)} ${shortDigest(desc.digest)}`;
  checkSmall(desc, maxBytes, what);
  const bytes = read(desc.size + 1);
  if (bytes.length !== desc.size) {
    throw new S2nError('ESIZE', `verify ${what}: got ${bytes.length > desc.size ? 'at least ' : ''}${bytes.length} bytes, expected ${desc.size}`, {
      hint: MISMATCH_HINT,
      context: { digest: desc.digest, expectedSize: desc.size, actualSize: bytes.length },
    });
  }
  return bytes;
}

/** The check for a small blob; ELIMIT before anything is read when `desc` says it is larger than `maxBytes`. */
function smallBlobCheck(desc: Descriptor, maxBytes: number): BlobCheck {
  const check = new BlobCheck(desc);
  checkSmall(desc, maxBytes, check.what);
  return check;
}

/** ESIZE for a declared size that is no byte count. */
function checkByteCount(desc: Descriptor, what: string): void {
  if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new S2nError('ESIZE', `verify ${what}: declared size ${String(desc.size)} is not a byte count`, {
      hint: 'the image is malformed; ask its publisher or try another tag',
      context: { digest: desc.digest, expectedSize: desc.size },
    });
  }
}

/** checkByteCount, and ELIMIT for a size over `maxBytes`. */
function checkSmall(desc: Descriptor, maxBytes: number, what: string): void {
  checkByteCount(desc, what);
  if (desc.size > maxBytes) {
    throw new S2nError('ELIMIT', `read ${what}: size ${desc.size} is over the ${maxBytes}-byte limit`, {
      hint: 'manifests and configs are small JSON documents; this image looks malformed or hostile',
      context: { digest: desc.digest, size: desc.size, limit: maxBytes },
    });
  }
}
