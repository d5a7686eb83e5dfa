/**
 * What the archive sources read through: the regular files of a tar file
 * (tar-index.ts), of a tar stream spooled once (tar-spool.ts), or of an OCI
 * layout directory (dir-reader.ts), by name. Names are archive-relative and
 * normalised; links are followed inside the archive only.
 */
import type { Readable } from 'node:stream';
import { S2nError } from '../../errors.js';
import { parseDigest, shortDigest } from '../../oci/digest.js';
import type { Digest } from '../../oci/types.js';
import { archiveError } from './tar-format.js';

export interface ArchiveFile {
  /** The name asked for, normalised. */
  name: string;
  size: number;
  /** The content's sha256 when the reader computed it already (streamed input). */
  digest?: Digest;
}

export interface ArchiveReader {
  /** The input as the user named it, for messages (`image.tar`, `stdin`, `./layout`). */
  readonly description: string;
  /** The regular file `name` resolves to; undefined when there is none. EUNSAFEPATH for names that leave the archive. */
  stat(name: string): Promise<ArchiveFile | undefined>;
  /** Its bytes, unverified. */
  open(file: ArchiveFile): Readable;
  /** At most `n` bytes from its start (format and compression sniffing). */
  head(file: ArchiveFile, n: number): Promise<Buffer>;
  /** Releases file handles and removes spooled data. */
  close(): Promise<void>;
}

/** `stat`, or EARCHIVE naming what was looked for. */
export async function requireFile(reader: ArchiveReader, name: string, what: string): Promise<ArchiveFile> {
  const f = await reader.stat(name);
  if (!f) {
    throw new S2nError('EARCHIVE', `read archive ${reader.description}: ${what} "${name}" is missing`, {
      hint: 'the archive is incomplete or damaged; create it again',
      context: { archive: reader.description, entry: name },
    });
  }
  return f;
}

/** A whole small file (JSON), refusing before reading when it is over `max` bytes. */
export async function readSmallFile(reader: ArchiveReader, file: ArchiveFile, max: number, what: string): Promise<Buffer> {
  if (file.size > max) {
    throw new S2nError('ELIMIT', `read archive ${reader.description}: ${what} "${file.name}" is ${file.size} bytes, over the ${max}-byte limit`, {
      hint: 'image archive metadata is small JSON; this archive looks malformed or hostile',
      context: { archive: reader.description, entry: file.name, size: file.size, limit: max },
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of reader.open(file) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > file.size) break;
    chunks.push(chunk);
  }
  if (total !== file.size) throw archiveError(reader.description, `${what} "${file.name}" changed or was cut short while being read`, { entry: file.name });
  return Buffer.concat(chunks, total);
}

/** JSON.parse, or EARCHIVE naming the file. */
export function parseArchiveJson(reader: ArchiveReader, bytes: Buffer, name: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (e) {
    throw archiveError(reader.description, `"${name}" is not valid JSON`, { entry: name, cause: e instanceof Error ? e.message : String(e) });
  }
}

/** `blobs/<alg>/<hex>`: where OCI layouts and docker ≥ 25 archives keep a blob. */
export function blobEntryName(digest: string): string {
  // parseDigest refuses anything but canonical sha256/sha512 digests: no path tricks.
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

/** The digest a `blobs/sha256/<hex>` name stands for, if it is one. */
export function digestOfBlobName(name: string): Digest | undefined {
  const m = /^blobs\/(sha256)\/([0-9a-f]{64})$/.exec(name) ?? /^blobs\/(sha512)\/([0-9a-f]{128})$/.exec(name);
  return m ? (`${m[1]}:${m[2]}` as Digest) : undefined;
}

export function blobMissingError(reader: ArchiveReader, digest: string, what = 'blob'): S2nError {
  return new S2nError('EARCHIVE', `read archive ${reader.description}: ${what} ${shortDigest(digest)} is not in the archive`, {
    hint: 'the archive is incomplete (saved without all its layers?) or damaged; create it again',
    context: { archive: reader.description, digest },
  });
}
