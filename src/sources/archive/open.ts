/**
 * Opens what the user handed to `load -i`, judged by content, never by name:
 * a directory with `oci-layout` (OCI image layout) or `manifest.json` (an
 * extracted docker save archive); a file starting with a
 * tar header (indexed in place, see tar-index.ts); a gzip- or
 * zstd-compressed file, or anything on stdin (read once, see tar-spool.ts).
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable, pipeline } from 'node:stream';
import { S2nError, sysCode } from '../../errors.js';
import { decompressor, detectCompression } from './decompress.js';
import { DirReader } from './dir-reader.js';
import type { ArchiveReader } from './reader.js';
import { BLOCK, looksLikeTar } from './tar-format.js';
import { TarIndex } from './tar-index.js';
import { SpoolReader, type SpoolOptions } from './tar-spool.js';

export interface OpenArchiveOptions extends SpoolOptions {
  /** Where `-` reads from (process.stdin in the CLI). */
  stdin?: Readable;
  /** The zstd program for zstd archives when Node has no decoder (tests). */
  zstdProgram?: string;
}

function notAnArchive(where: string, detail: string): S2nError {
  return new S2nError('EARCHIVE', `read archive ${where}: ${detail}`, {
    hint: 'give a `docker save` or oci-archive tar file (optionally gzip- or zstd-compressed), an OCI layout directory, or - for stdin',
    context: { archive: where },
  });
}

/** Opens `input` (a path, or `-` for opts.stdin). The caller closes the reader. */
export async function openArchive(input: string, opts: OpenArchiveOptions): Promise<ArchiveReader> {
  if (input === '-') {
    if (!opts.stdin) throw notAnArchive('stdin', 'no standard input to read');
    return openStream(opts.stdin, 'stdin', opts);
  }
  let st;
  try {
    st = await stat(input);
  } catch (e) {
    const code = sysCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new S2nError('EUSAGE', `read archive ${input}: no such file or directory`, { hint: 'check the path given with -i', context: { archive: input } });
    }
    throw new S2nError('EARCHIVE', `read archive ${input}: ${e instanceof Error ? e.message : String(e)}`, { cause: e, context: { archive: input } });
  }
  if (st.isDirectory()) {
    const dir = await DirReader.open(input, input);
    // An OCI layout, or an extracted docker save archive.
    if (!(await dir.stat('oci-layout')) && !(await dir.stat('manifest.json'))) {
      throw notAnArchive(input, 'the directory is neither an OCI image layout (no oci-layout file) nor an extracted docker save archive (no manifest.json)');
    }
    return dir;
  }
  if (!st.isFile()) {
    // A FIFO or character device (e.g. /dev/stdin): read it once, like stdin.
    return openStream(createReadStream(input), input, opts);
  }
  const head = await readHead(input);
  const c = detectCompression(head);
  if (c !== 'none') return SpoolReader.read(decompressed(createReadStream(input, { highWaterMark: 1024 * 1024 }), c, input, opts), input, opts);
  if (head.length === 0) throw notAnArchive(input, 'the file is empty');
  if (!looksLikeTar(head)) throw notAnArchive(input, 'not a tar archive, an OCI layout, or a gzip- or zstd-compressed archive');
  return TarIndex.open(input, input);
}

async function readHead(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(BLOCK);
    const { bytesRead } = await fh.read(buf, 0, BLOCK, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function decompressed(src: Readable, c: ReturnType<typeof detectCompression>, where: string, opts: OpenArchiveOptions): Readable {
  if (c === 'none') return src;
  const d = decompressor(c, where, opts.zstdProgram);
  // Errors of either side destroy both; the reader sees the first one.
  return pipeline(src, d, () => {}) as unknown as Readable;
}

/** A stream that cannot be seeked: sniff its first block, then read it once. */
async function openStream(src: Readable, where: string, opts: OpenArchiveOptions): Promise<ArchiveReader> {
  const it = (src as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const headParts: Buffer[] = [];
  let got = 0;
  let ended = false;
  while (got < BLOCK) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const c = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    headParts.push(c);
    got += c.length;
  }
  const head = Buffer.concat(headParts, got);
  if (head.length === 0) throw notAnArchive(where, 'the input is empty');
  const whole = Readable.from(
    (async function* () {
      yield head;
      if (ended) return;
      for (let r = await it.next(); !r.done; r = await it.next()) yield typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    })(),
    { objectMode: false },
  );
  // Destroying the rebuilt stream releases the original.
  whole.once('close', () => src.destroy());
  const c = detectCompression(head);
  if (c === 'none' && !looksLikeTar(head)) {
    whole.destroy();
    throw notAnArchive(where, 'not a tar archive, or a gzip- or zstd-compressed one');
  }
  return SpoolReader.read(decompressed(whole, c, where, opts), where, opts);
}
