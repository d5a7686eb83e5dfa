/**
 * A seekable tar file, indexed by reading only its 512-byte headers with
 * positional reads and jumping over the data: a 2 GB `docker save` archive
 * costs a few hundred small reads, nothing is extracted, and any entry
 * (manifest.json comes last) is read later straight from its offset.
 * Header decoding and the entry rules are shared with the streaming path
 * (tar-format.ts).
 */
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ArchiveFile, ArchiveReader } from './reader.js';
import {
  BLOCK,
  EntryTable,
  ExtendedHeaders,
  archiveError,
  decodeHeader,
  normaliseEntryName,
  padded,
  truncatedError,
} from './tar-format.js';

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

export class TarIndex implements ArchiveReader {
  private constructor(
    readonly description: string,
    private readonly fh: FileHandle,
    readonly table: EntryTable,
    /** File size when indexed. */
    readonly fileSize: number,
  ) {}

  /** Indexes the tar file at `path`; `description` names it in messages. Throws EARCHIVE/EUNSAFEPATH, closing the file. */
  static async open(path: string, description = path): Promise<TarIndex> {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const table = await scan(fh, size, description);
      return new TarIndex(description, fh, table, size);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async stat(name: string): Promise<ArchiveFile | undefined> {
    const e = this.table.resolveFile(normaliseEntryName(name, this.description));
    return e ? { name: normaliseEntryName(name, this.description), size: e.size } : undefined;
  }

  open(file: ArchiveFile): Readable {
    const e = this.table.requireFile(file.name);
    if (e.size === 0) return Readable.from([]);
    // Positional reads on the shared handle: several entries can be read at once; the handle stays open until close().
    // (By fd number: a FileHandle would gain a 'close' listener per stream.)
    return createReadStream('', { fd: this.fh.fd, start: e.offset, end: e.offset + e.size - 1, autoClose: false, highWaterMark: 1024 * 1024 });
  }

  async head(file: ArchiveFile, n: number): Promise<Buffer> {
    const e = this.table.requireFile(file.name);
    return readAt(this.fh, e.offset, Math.min(n, e.size));
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
  }
}

/**
 * Walks the headers. Refuses (EARCHIVE) bad checksums and sizes, headers or
 * data past the end of the file and a missing end-of-archive marker
 * (truncation), and everything EntryTable refuses.
 */
async function scan(fh: FileHandle, fileSize: number, where: string): Promise<EntryTable> {
  const table = new EntryTable(where);
  let pos = 0;
  const ext = new ExtendedHeaders(where);
  for (;;) {
    if (pos + BLOCK > fileSize) {
      // Every tar writer ends with zero blocks; without them the file was cut (maybe right after an entry).
      if (pos === fileSize) throw archiveError(where, `the archive is truncated (no end-of-archive marker after byte ${pos})`, { offset: pos });
      throw truncatedError(where, pos);
    }
    const block = await readAt(fh, pos, BLOCK);
    if (block.length < BLOCK) throw truncatedError(where, pos);
    const raw = decodeHeader(block, pos, where);
    if (raw === null) {
      ext.end();
      break;
    }
    const dataStart = pos + BLOCK;
    if (ExtendedHeaders.is(raw)) {
      ext.checkSize(raw, pos);
      if (dataStart + raw.size > fileSize) throw truncatedError(where, pos);
      const data = await readAt(fh, dataStart, raw.size);
      if (data.length < raw.size) throw truncatedError(where, pos);
      ext.add(raw, data, pos);
      pos = dataStart + padded(raw.size);
      continue;
    }
    const h = ext.apply(raw);
    if (dataStart + h.size > fileSize) throw truncatedError(where, pos);
    const entry = EntryTable.toEntry(h, dataStart, where);
    if (entry) table.add(entry);
    pos = dataStart + padded(h.size);
  }
  table.finish();
  return table;
}
