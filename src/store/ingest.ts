/**
 * The write end of ContentStore.put(): one Writable that hashes and counts
 * each chunk, writes whatever queued up meanwhile with one writev, and at the
 * end checks size and digest and fsyncs. 'finish' therefore means "complete,
 * verified and durable"; the caller only links the file into place.
 *
 * It replaces verify → count → fs.WriteStream, which cost two more stream
 * hops per chunk and one thread-pool write per 16–64 KiB network chunk.
 */
import { close, fsync, writev } from 'node:fs';
import { Writable } from 'node:stream';
import type { BlobCheck } from '../oci/verify.js';

/**
 * How much may queue per blob while a write is on the disk; it is also the
 * largest single writev. Bounds memory (× concurrent blobs), not blob size.
 */
export const INGEST_BUFFER_BYTES = 1024 * 1024;

export class IngestWriter extends Writable {
  private readonly fd: number;
  private readonly check: BlobCheck;
  private readonly onBytes: ((n: number) => void) | undefined;
  /** A writev or fsync is running on the thread pool: the fd must stay open until it returns. */
  private busy = false;
  private afterIo: (() => void) | undefined;

  /** Takes ownership of `fd` (an empty file opened for writing): it is closed when the stream is destroyed. */
  constructor(fd: number, check: BlobCheck, onBytes?: (n: number) => void) {
    super({ highWaterMark: INGEST_BUFFER_BYTES });
    this.fd = fd;
    this.check = check;
    this.onBytes = onBytes;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeChunks([chunk], cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.writeChunks(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  private writeChunks(bufs: Buffer[], cb: (err?: Error | null) => void): void {
    let total = 0;
    for (const b of bufs) {
      // Nothing past the declared size reaches the disk.
      const err = this.check.add(b);
      if (err) return cb(err);
      total += b.length;
    }
    this.io((done) => writeAll(this.fd, bufs, done), (err) => {
      if (!err) this.onBytes?.(total);
      cb(err);
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    const err = this.check.finish();
    if (err) return cb(err);
    // Durable before put() links it into blobs/: after a crash a blob name never points at lost data.
    this.io((done) => fsync(this.fd, done), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const closeFd = (): void => close(this.fd, (closeErr) => cb(err ?? closeErr));
    // Closing under a running write could hand its fd number to another file before the write lands.
    if (this.busy) this.afterIo = closeFd;
    else closeFd();
  }

  private io(op: (done: (err: Error | null) => void) => void, cb: (err: Error | null) => void): void {
    this.busy = true;
    op((err) => {
      this.busy = false;
      const pending = this.afterIo;
      this.afterIo = undefined;
      cb(err);
      pending?.();
    });
  }
}

/** writev until every byte is written (libuv already retries short writes; this covers what it returns short). */
function writeAll(fd: number, bufs: Buffer[], done: (err: Error | null) => void): void {
  writev(fd, bufs, (err, written) => {
    if (err) return done(err);
    let skip = written;
    const rest: Buffer[] = [];
    for (const b of bufs) {
      if (skip >= b.length) skip -= b.length;
      else {
        rest.push(skip > 0 ? b.subarray(skip) : b);
        skip = 0;
      }
    }
    if (rest.length === 0) return done(null);
    if (written === 0) return done(Object.assign(new Error('write returned 0 bytes'), { code: 'EIO', syscall: 'writev' }));
    writeAll(fd, rest, done);
  });
}
