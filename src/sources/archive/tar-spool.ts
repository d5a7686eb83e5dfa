/**
 * A tar stream that cannot be seeked (stdin, a gzip- or zstd-compressed
 * archive), read in one pass. docker save puts manifest.json last, so which
 * entries are layers is only known at the end: every regular file is hashed
 * (sha256) and counted as it passes; small ones are kept in memory, the rest
 * are written to spool files the caller places (the store's ingest/ dir, so
 * a later put() copies within one file system and a crashed load's files are
 * swept by GC like any dead writer's). Nothing is committed here: the load
 * checks everything against the manifests first, then puts the blobs.
 *
 * Same header decoder and entry rules as the seekable path (tar-format.ts).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { S2nError, isS2nError } from '../../errors.js';
import type { Digest } from '../../oci/types.js';
import type { ArchiveFile, ArchiveReader } from './reader.js';
import {
  BLOCK,
  EntryTable,
  ExtendedHeaders,
  archiveError,
  decodeHeader,
  normaliseEntryName,
  padded,
  type TarEntry,
} from './tar-format.js';

export interface SpoolOptions {
  /** A new, unused path for each spool file (e.g. `<store>/ingest/<pid>-<rand>`). */
  spoolPath: () => string;
  /** Files up to this size stay in memory (default 1 MiB)... */
  memoryEntryMax?: number;
  /** ...while all of them together stay under this (default 64 MiB). */
  memoryTotalMax?: number;
  signal?: AbortSignal;
}

interface SpoolEntry extends TarEntry {
  digest?: Digest;
  data?: Buffer;
  path?: string;
}

/** Pulls exact byte counts out of an async iterator of chunks. */
class Puller {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  /** Bytes handed out so far: the offset in the tar stream. */
  position = 0;

  constructor(
    private readonly it: AsyncIterator<Buffer | string>,
    private readonly where: string,
  ) {}

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    let r: IteratorResult<Buffer | string>;
    try {
      r = await this.it.next();
    } catch (e) {
      throw inputError(e, this.where);
    }
    if (r.done) {
      this.ended = true;
      return false;
    }
    const c = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    if (c.length > 0) {
      this.chunks.push(c);
      this.buffered += c.length;
    }
    return true;
  }

  /** Up to `max` bytes, at least one unless the input ended. */
  private async some(max: number): Promise<Buffer | undefined> {
    while (this.buffered === 0) if (!(await this.pull())) return undefined;
    const first = this.chunks[0] as Buffer;
    let out: Buffer;
    if (first.length <= max) {
      out = first;
      this.chunks.shift();
    } else {
      out = first.subarray(0, max);
      this.chunks[0] = first.subarray(max);
    }
    this.buffered -= out.length;
    this.position += out.length;
    return out;
  }

  /** Exactly `n` bytes, or fewer only when the input ended. */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const c = await this.some(n - got);
      if (!c) break;
      parts.push(c);
      got += c.length;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, got);
  }

  /** `n` bytes in pieces; throws EARCHIVE (truncated) if the input ends first. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      const c = await this.some(left);
      if (!c) throw archiveError(this.where, `the archive is truncated (it ends inside an entry at byte ${this.position})`, { offset: this.position });
      left -= c.length;
      yield c;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n)) {
      /* discard */
    }
  }

  /** Reads to the end (so a decompressor checks its trailer), discarding. */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (await this.pull()) {
      this.chunks = [];
      this.buffered = 0;
    }
  }
}

function inputError(e: unknown, where: string): unknown {
  if (isS2nError(e)) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof Error && e.name === 'AbortError') return e;
  // zlib's errors (Z_BUF_ERROR "unexpected end of file", Z_DATA_ERROR …) say little on their own.
  const detail = /^Z_/.test(String((e as { code?: unknown }).code)) ? `the gzip data is damaged or truncated (${msg})` : msg;
  return new S2nError('EARCHIVE', `read archive ${where}: ${detail}`, {
    hint: 'the archive is damaged or truncated (a compressed archive must be complete); create it again',
    cause: e,
    context: { archive: where },
  });
}

export class SpoolReader implements ArchiveReader {
  private constructor(
    readonly description: string,
    private readonly table: EntryTable<SpoolEntry>,
    private readonly spoolFiles: string[],
  ) {}

  /**
   * Reads `input` (an uncompressed tar stream) to its end. On any error the
   * spool files written so far are removed and the input is destroyed.
   */
  static async read(input: Readable, description: string, opts: SpoolOptions): Promise<SpoolReader> {
    const spoolFiles: string[] = [];
    try {
      const table = await spool(input, description, opts, spoolFiles);
      return new SpoolReader(description, table, spoolFiles);
    } catch (e) {
      input.destroy();
      await removeAll(spoolFiles);
      throw e;
    }
  }

  async stat(name: string): Promise<ArchiveFile | undefined> {
    const n = normaliseEntryName(name, this.description);
    const e = this.table.resolveFile(n);
    return e ? { name: n, size: e.size, ...(e.digest ? { digest: e.digest } : {}) } : undefined;
  }

  open(file: ArchiveFile): Readable {
    const e = this.table.requireFile(file.name);
    if (e.path !== undefined) return createReadStream(e.path, { highWaterMark: 1024 * 1024 });
    return Readable.from(e.data && e.data.length > 0 ? [e.data] : []);
  }

  async head(file: ArchiveFile, n: number): Promise<Buffer> {
    const e = this.table.requireFile(file.name);
    if (e.path === undefined) return (e.data ?? Buffer.alloc(0)).subarray(0, n);
    const fh = await open(e.path, 'r');
    try {
      const buf = Buffer.alloc(Math.min(n, e.size));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    await removeAll(this.spoolFiles);
  }
}

async function removeAll(paths: string[]): Promise<void> {
  await Promise.all(paths.map((p) => unlink(p).catch(() => {})));
  paths.length = 0;
}

const WRITE_BATCH = 1024 * 1024;

async function spool(input: Readable, where: string, opts: SpoolOptions, spoolFiles: string[]): Promise<EntryTable<SpoolEntry>> {
  const memoryEntryMax = opts.memoryEntryMax ?? 1024 * 1024;
  const memoryTotalMax = opts.memoryTotalMax ?? 64 * 1024 * 1024;
  let memoryUsed = 0;
  const table = new EntryTable<SpoolEntry>(where);
  const it = (input as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const src = new Puller(it, where);
  const ext = new ExtendedHeaders(where);
  for (;;) {
    opts.signal?.throwIfAborted();
    const headerAt = src.position;
    const block = await src.read(BLOCK);
    if (block.length < BLOCK) {
      if (block.length === 0) throw archiveError(where, `the archive is truncated (no end-of-archive marker after byte ${headerAt})`, { offset: headerAt });
      throw archiveError(where, `the archive is truncated (it ends inside a header at byte ${headerAt})`, { offset: headerAt });
    }
    const raw = decodeHeader(block, headerAt, where);
    if (raw === null) {
      ext.end();
      break;
    }
    const dataStart = headerAt + BLOCK;
    if (ExtendedHeaders.is(raw)) {
      ext.checkSize(raw, headerAt);
      const data = Buffer.concat(await collect(src.take(raw.size)));
      await src.skip(padded(raw.size) - raw.size);
      ext.add(raw, data, headerAt);
      continue;
    }
    const h = ext.apply(raw);
    const base = EntryTable.toEntry(h, dataStart, where);
    if (base === undefined || base.type !== 'file') {
      await src.skip(padded(h.size));
      if (base) table.add(base);
      continue;
    }
    // Checked before any byte is kept: a collision must not cost a spool file.
    if (table.get(base.name)) table.add(base);
    const hash = createHash('sha256');
    const entry: SpoolEntry = { ...base };
    if (h.size <= memoryEntryMax && memoryUsed + h.size <= memoryTotalMax) {
      const parts: Buffer[] = [];
      for await (const c of src.take(h.size)) {
        hash.update(c);
        parts.push(c);
      }
      entry.data = Buffer.concat(parts, h.size);
      memoryUsed += h.size;
    } else {
      const path = opts.spoolPath();
      spoolFiles.push(path);
      entry.path = path;
      await writeSpool(path, src.take(h.size), hash, opts.signal);
    }
    entry.digest = `sha256:${hash.digest('hex')}`;
    table.add(entry);
    await src.skip(padded(h.size) - h.size);
  }
  table.finish();
  await src.drain();
  return table;
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

async function writeSpool(path: string, chunks: AsyncIterable<Buffer>, hash: ReturnType<typeof createHash>, signal?: AbortSignal): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'wx', 0o600);
    let batch: Buffer[] = [];
    let batched = 0;
    for await (const c of chunks) {
      hash.update(c);
      batch.push(c);
      batched += c.length;
      if (batched >= WRITE_BATCH) {
        signal?.throwIfAborted();
        await writeAll(fh, batch, batched);
        batch = [];
        batched = 0;
      }
    }
    if (batched > 0) await writeAll(fh, batch, batched);
  } finally {
    await fh?.close();
  }
}

/** writev until all `total` bytes are written (a short write is legal, if rare, on files). */
async function writeAll(fh: FileHandle, bufs: Buffer[], total: number): Promise<void> {
  let rest = bufs;
  let left = total;
  while (left > 0) {
    const { bytesWritten } = await fh.writev(rest);
    if (bytesWritten === 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
    left -= bytesWritten;
    if (left === 0) break;
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) skip -= b.length;
      else {
        next.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    rest = next;
  }
}
