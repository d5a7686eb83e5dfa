/**
 * A block-level check in front of tar-stream. tar-stream is the entry
 * parser, but it is lenient where a layer extractor must not be: it skips
 * zero blocks and keeps parsing after the end-of-archive marker, merges PAX
 * global headers into later entries' PAX headers, and takes a negative
 * base-256 size on a meta header as "no data" (so its framing drifts). This
 * Transform hashes every byte (the diff_id covers the whole uncompressed
 * stream, trailing bytes included), frames the archive itself the way Go's
 * archive/tar does, and forwards to tar-stream only what it accepts:
 *
 * - stops at the first two consecutive zero blocks; later bytes are hashed but
 *   never parsed (one zero block followed by a header is refused, as Go does);
 * - drops PAX global headers (`g`), so their keys never reach any entry;
 * - refuses negative, non-numeric or unsafe sizes (header or PAX `size`), and
 *   header-only types (links, dirs, devices, fifos) that claim data;
 * - records each entry's type and data size, so the caller can check that
 *   tar-stream framed the same entry.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { S2nError } from '../errors.js';
import { createHasher, type Hasher } from '../oci/verify.js';
import type { DigestAlgorithm } from '../oci/digest.js';

const BLOCK = 512;
/** PAX and GNU long-name headers larger than this are refused (tar-stream stops at 4 MiB). */
const MAX_META = 1024 * 1024;

export interface Xattr {
  name: string;
  /** Raw bytes: tar-stream decodes PAX values as UTF-8, which corrupts binary ones (security.capability). */
  value: Buffer;
}

export interface GuardedEntry {
  typeflag: string;
  /** Data bytes that follow the header (after a PAX `size`). */
  size: number;
  /** `SCHILY.xattr.*` records of the entry's PAX header. */
  xattrs?: Xattr[];
}

export function malformed(detail: string, context: Record<string, unknown> = {}): S2nError {
  return new S2nError('EARCHIVE', `apply layer: ${detail}`, {
    hint: 'the layer is not a well-formed tar archive; the image is damaged or hostile',
    context,
  });
}

/** tar-stream's notion of an empty header: everything but the checksum field is zero. */
function isNullHeader(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if ((i < 148 || i >= 156) && b[i] !== 0) return false;
  return true;
}

/** Numeric field decoding as tar-stream does it (octal or base-256), NaN where it would be garbage. */
function decodeNum(b: Buffer, off: number, len: number): number {
  const v = b.subarray(off, off + len);
  const first = v[0] ?? 0;
  if (first & 0x80) {
    // 0xff: a negative base-256 number (tar-stream decodes all-0xff as -0, i.e. 0); refused whatever its value.
    if (first === 0xff) return -1;
    if (first !== 0x80) return NaN;
    let sum = 0;
    for (let i = v.length - 1, m = 1; i > 0; i--, m *= 256) sum += v[i]! * m;
    return sum;
  }
  let s = 0;
  while (s < v.length && v[s] === 32) s++;
  let e = v.indexOf(32, s);
  if (e < 0) e = v.length;
  while (s < e && v[s] === 0) s++;
  if (e === s) return 0;
  const str = v.subarray(s, e).toString('latin1').replace(/\0+$/, '');
  if (!/^[0-7]+$/.test(str)) return NaN;
  return parseInt(str, 8);
}

function cString(b: Buffer, off: number, len: number): string {
  const v = b.subarray(off, off + len);
  const z = v.indexOf(0);
  return v.subarray(0, z < 0 ? v.length : z).toString('utf8');
}

const XATTR_PREFIX = 'SCHILY.xattr.';

/** The PAX `size` record (last one wins, as in tar-stream) and the xattr records, values as raw bytes. */
function paxRecords(data: Buffer): { size?: string; xattrs: Xattr[] } {
  let size: string | undefined;
  const xattrs = new Map<string, Buffer>();
  let buf = data;
  while (buf.length) {
    const sp = buf.indexOf(32);
    if (sp <= 0) break;
    const len = parseInt(buf.subarray(0, sp).toString('latin1'), 10);
    if (!len || len > buf.length) break;
    const rec = buf.subarray(sp + 1, len - 1);
    const eq = rec.indexOf(61); // '='
    if (eq < 0) break;
    const key = rec.subarray(0, eq).toString('utf8');
    if (key === 'size') size = rec.subarray(eq + 1).toString('utf8');
    else if (key.startsWith(XATTR_PREFIX) && key.length > XATTR_PREFIX.length) xattrs.set(key.slice(XATTR_PREFIX.length), Buffer.from(rec.subarray(eq + 1)));
    buf = buf.subarray(len);
  }
  return { ...(size !== undefined ? { size } : {}), xattrs: [...xattrs].map(([name, value]) => ({ name, value })) };
}

const EMPTY = Buffer.alloc(0);

const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

export class TarGuard extends Transform {
  readonly hasher: Hasher;
  /** Entries framed so far, oldest first; the consumer shifts one per tar-stream entry. */
  readonly entries: GuardedEntry[] = [];
  /** Bytes after the end-of-archive marker that were not zero. */
  trailingData = false;
  /** PAX global headers dropped. */
  globalHeaders = 0;

  private pending: Buffer[] = [];
  private pendingLen = 0;
  private zeros = 0;
  private ended = false;
  private dataBlocks = 0;
  private dropData = false;
  private meta: { type: string; size: number; chunks: Buffer[] } | undefined;
  private nextPaxSize: string | undefined;
  private nextXattrs: Xattr[] | undefined;
  private offset = 0;

  constructor(algorithm: DigestAlgorithm) {
    super({ readableHighWaterMark: 1024 * 1024 });
    this.hasher = createHasher(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    if (this.ended) {
      if (!this.trailingData && chunk.some((x) => x !== 0)) this.trailingData = true;
      cb();
      return;
    }
    const out: Buffer[] = [];
    try {
      let data = chunk;
      if (this.pendingLen > 0) {
        // Complete the partial block left by the last chunk; the chunk itself is then framed in place (no copy).
        const need = BLOCK - this.pendingLen;
        if (chunk.length < need) {
          this.pending.push(chunk);
          this.pendingLen += chunk.length;
          cb();
          return;
        }
        const first = Buffer.concat([...this.pending, chunk.subarray(0, need)]);
        this.pending = [];
        this.pendingLen = 0;
        this.scan(first, out);
        data = chunk.subarray(need);
        if (this.ended) {
          if (data.some((x) => x !== 0)) this.trailingData = true;
          data = EMPTY;
        }
      }
      const rest = this.scan(data, out);
      if (rest.length > 0) {
        this.pending = [Buffer.from(rest)];
        this.pendingLen = rest.length;
      }
    } catch (e) {
      cb(e as Error);
      return;
    }
    for (const b of out) this.push(b);
    cb();
  }

  /**
   * Frames the whole blocks of `all`, adding to `out` the runs tar-stream
   * gets; returns the partial block left at its end (nothing once the
   * end-of-archive marker was met: what follows it is only checked for
   * non-zero bytes, never parsed).
   */
  private scan(all: Buffer, out: Buffer[]): Buffer {
    const whole = all.length - (all.length % BLOCK);
    let runStart = 0;
    let off = 0;
    while (off < whole) {
      if (this.dataBlocks > 0 && this.meta === undefined) {
        // An entry's data: counted in bulk, never looked at (dropped after a PAX global header).
        const n = Math.min(this.dataBlocks, (whole - off) / BLOCK);
        this.dataBlocks -= n;
        this.offset += n * BLOCK;
        if (this.dropData) {
          if (off > runStart) out.push(all.subarray(runStart, off));
          runStart = off + n * BLOCK;
        }
        off += n * BLOCK;
        continue;
      }
      if (!this.block(all.subarray(off, off + BLOCK))) {
        if (off > runStart) out.push(all.subarray(runStart, off));
        runStart = off + BLOCK;
      }
      off += BLOCK;
      if (this.ended) {
        if (off > runStart) out.push(all.subarray(runStart, off));
        if (all.subarray(off).some((x) => x !== 0)) this.trailingData = true;
        return EMPTY;
      }
    }
    if (whole > runStart) out.push(all.subarray(runStart, whole));
    return all.subarray(whole);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.ended && (this.pendingLen > 0 || this.dataBlocks > 0)) {
      cb(malformed(`the tar archive is truncated at byte ${this.offset + this.pendingLen}`, { offset: this.offset }));
      return;
    }
    cb();
  }

  /** Account for one block; false if it must not reach tar-stream. */
  private block(b: Buffer): boolean {
    const at = this.offset;
    this.offset += BLOCK;
    if (this.dataBlocks > 0) {
      this.dataBlocks--;
      if (this.meta) {
        this.meta.chunks.push(Buffer.from(b));
        if (this.dataBlocks === 0) {
          if (this.meta.type === 'x') {
            const pax = paxRecords(Buffer.concat(this.meta.chunks).subarray(0, this.meta.size));
            if (pax.size !== undefined) this.nextPaxSize = pax.size;
            if (pax.xattrs.length > 0) this.nextXattrs = pax.xattrs;
          }
          this.meta = undefined;
        }
      }
      return !this.dropData;
    }
    if (isNullHeader(b)) {
      this.zeros++;
      if (this.zeros === 2) this.ended = true;
      return true;
    }
    if (this.zeros > 0) throw malformed(`a header follows a single zero block at byte ${at} (data after the end-of-archive marker)`, { offset: at });
    const typeflag = b[156] === 0 ? '0' : String.fromCharCode(b[156]!);
    const size = decodeNum(b, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw malformed(`header at byte ${at} has an invalid size (${String(size)})`, { offset: at, size });
    }
    this.dropData = false;
    if (typeflag === 'g' || typeflag === 'x' || typeflag === 'L' || typeflag === 'K') {
      if (size > MAX_META) throw malformed(`extended header at byte ${at} is too large (${size} bytes)`, { offset: at, size });
      this.dataBlocks = Math.ceil(size / BLOCK);
      if (typeflag === 'g') {
        // Ignored, as containerd and Docker ignore them: never forwarded, so never merged.
        this.globalHeaders++;
        this.dropData = true;
        return false;
      }
      this.meta = this.dataBlocks > 0 ? { type: typeflag, size, chunks: [] } : undefined;
      return true;
    }
    let effective = size;
    if (this.nextPaxSize !== undefined) {
      const s = this.nextPaxSize;
      this.nextPaxSize = undefined;
      if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) {
        throw malformed(`PAX size "${s}" for the header at byte ${at} is not a byte count`, { offset: at, size: s });
      }
      effective = Number(s);
    }
    // tar-stream (like old tars) reads a plain file whose name ends in '/' as a directory.
    let name = cString(b, 0, 100);
    if (b.subarray(257, 263).toString('latin1') === 'ustar\0' && b[345]) name = `${cString(b, 345, 155)}/${name}`;
    const headerOnly = HEADER_ONLY.has(typeflag) || (typeflag === '0' && name.endsWith('/'));
    if (headerOnly && effective !== 0) {
      throw malformed(`entry "${name}" (type ${typeflag}) at byte ${at} claims ${effective} bytes of data`, { entry: name, offset: at });
    }
    const xattrs = this.nextXattrs;
    this.nextXattrs = undefined;
    this.entries.push({ typeflag, size: effective, ...(xattrs ? { xattrs } : {}) });
    this.dataBlocks = Math.ceil(effective / BLOCK);
    return true;
  }
}
