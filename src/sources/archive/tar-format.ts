/**
 * The tar format as image archives use it, decoded by hand: ustar and GNU
 * headers, base-256 sizes, GNU long names (`././@LongLink`, types L/K) and
 * PAX extended headers (path, linkpath, size).
 *
 * Why not tar-stream: its header decoder (headers.js) is not exported, and its
 * extractor only parses a stream from the start. The seekable path (tar-index.ts)
 * reads 512-byte headers with positional reads and jumps over the data, so
 * it needs a decoder it can call on one block; the streaming path
 * (tar-spool.ts) uses the same decoder, so both paths accept and refuse
 * exactly the same archives.
 *
 * Entry names are normalised and checked here too (no `..`, no absolute
 * paths), and an EntryTable keeps one archive's entries: it refuses names
 * that collide after normalisation and links that leave the archive, and
 * follows the links that stay inside (docker save writes `<id>/layer.tar` as
 * a symlink to another layer's file when two images share a layer).
 */
import { posix } from 'node:path';
import { S2nError } from '../../errors.js';

export const BLOCK = 512;

/** Largest GNU long name or PAX header we read (they hold one path). */
export const MAX_META_BYTES = 1024 * 1024;
/** Entries one archive may hold: docker save writes about four per layer. */
export const MAX_ENTRIES = 200_000;
/** Links followed in a row before we call it a loop. */
const MAX_LINK_HOPS = 16;

export type RawType =
  | 'file'
  | 'link'
  | 'symlink'
  | 'directory'
  | 'char'
  | 'block'
  | 'fifo'
  | 'pax'
  | 'pax-global'
  | 'gnu-longname'
  | 'gnu-longlink'
  | 'unknown';

export interface RawHeader {
  name: string;
  linkname: string;
  /** Bytes of data that follow the header (0 for header-only types, as Go's archive/tar reads them). */
  size: number;
  type: RawType;
  typeflag: string;
}

const HEADER_ONLY: ReadonlySet<RawType> = new Set(['link', 'symlink', 'directory', 'char', 'block', 'fifo']);

/** An archive error with the archive named: "read archive FILE: …". */
export function archiveError(where: string, detail: string, context: Record<string, unknown> = {}): S2nError {
  return new S2nError('EARCHIVE', `read archive ${where}: ${detail}`, {
    hint: 'the archive is damaged, truncated or not an image archive; create it again (docker save, skopeo copy, podman save)',
    context: { archive: where, ...context },
  });
}

export function unsafePathError(where: string, detail: string, entry: string): S2nError {
  return new S2nError('EUNSAFEPATH', `read archive ${where}: ${detail}`, {
    hint: 'the archive holds paths that reach outside it; it was crafted or damaged, do not use it',
    context: { archive: where, entry },
  });
}

export function truncatedError(where: string, offset: number): S2nError {
  return archiveError(where, `the archive is truncated (it ends inside an entry at byte ${offset})`, { offset });
}

/** Rounds up to whole blocks. */
export function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

function cString(buf: Buffer, start: number, length: number): string {
  const field = buf.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('utf8');
}

/** A numeric field: octal ASCII (NUL/space padded) or GNU base-256. Undefined when malformed or negative. */
function numeric(buf: Buffer, start: number, length: number): number | undefined {
  const field = buf.subarray(start, start + length);
  const first = field[0] ?? 0;
  if (first & 0x80) {
    // Base-256, big-endian two's complement; 0xff starts a negative number.
    if (first === 0xff) return undefined;
    let v = first & 0x7f;
    for (let i = 1; i < field.length; i++) {
      v = v * 256 + (field[i] ?? 0);
      if (v > Number.MAX_SAFE_INTEGER) return undefined;
    }
    return v;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (!/^[0-7]*$/.test(text)) return undefined;
  if (text === '') return 0;
  const v = parseInt(text, 8);
  return Number.isSafeInteger(v) ? v : undefined;
}

function checksumOk(block: Buffer): boolean {
  const stored = numeric(block, 148, 8);
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Some old tars summed signed bytes; both are accepted, as GNU tar does.
  return stored === unsigned || stored === signed;
}

function typeOf(flag: string): RawType {
  switch (flag) {
    case '0':
    case '\0':
    case '7': // contiguous file: a regular file everywhere that matters
      return 'file';
    case '1':
      return 'link';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
      return 'directory';
    case '6':
      return 'fifo';
    case 'x':
      return 'pax';
    case 'g':
      return 'pax-global';
    case 'L':
      return 'gnu-longname';
    case 'K':
      return 'gnu-longlink';
    default:
      return 'unknown';
  }
}

/** True when `block` could start a tar archive: a header with a valid checksum (format sniffing). */
export function looksLikeTar(block: Buffer): boolean {
  return block.length >= BLOCK && !isZeroBlock(block) && checksumOk(block);
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/**
 * One 512-byte header; null for a zero block (end of archive). Throws
 * EARCHIVE for a bad checksum or size: `offset` and `where` only name the spot.
 */
export function decodeHeader(block: Buffer, offset: number, where: string): RawHeader | null {
  if (isZeroBlock(block)) return null;
  if (!checksumOk(block)) throw archiveError(where, `bad tar header checksum at byte ${offset} (not a tar archive, or damaged)`, { offset });
  const typeflag = String.fromCharCode(block[156] ?? 0);
  let type = typeOf(typeflag);
  const size = numeric(block, 124, 12);
  if (size === undefined) throw archiveError(where, `tar header at byte ${offset} has a negative or malformed size`, { offset });
  let name = cString(block, 0, 100);
  // POSIX ustar ("ustar\0" + "00") has a 155-byte name prefix; the GNU format ("ustar  \0") uses those bytes for times.
  if (block.toString('latin1', 257, 263) === 'ustar\0') {
    const prefix = cString(block, 345, 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  // Old tars marked directories by a trailing slash on a regular file.
  if (type === 'file' && typeflag !== '7' && name.endsWith('/')) type = 'directory';
  return { name, linkname: cString(block, 157, 100), size: HEADER_ONLY.has(type) ? 0 : size, type, typeflag };
}

/** PAX records `"<len> <key>=<value>\n"`; throws EARCHIVE if they do not parse. */
export function parsePax(data: Buffer, where: string, offset: number): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // NUL padding after the last record
    const space = data.indexOf(0x20, pos);
    const len = space < 0 ? NaN : Number(data.toString('latin1', pos, space));
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw archiveError(where, `malformed PAX header at byte ${offset}`, { offset });
    }
    const record = data.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw archiveError(where, `malformed PAX record at byte ${offset}`, { offset });
    out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/** What extended headers (PAX `x`, GNU `L`/`K`) say about the next entry. */
interface PendingMeta {
  path?: string;
  linkpath?: string;
  size?: number;
}

/** Applies a PAX or GNU long-name header's data to `pending`. */
function applyMeta(pending: PendingMeta, h: RawHeader, data: Buffer, where: string, offset: number): void {
  if (h.type === 'gnu-longname') pending.path = cString(data, 0, data.length);
  else if (h.type === 'gnu-longlink') pending.linkpath = cString(data, 0, data.length);
  else if (h.type === 'pax') {
    const rec = parsePax(data, where, offset);
    const path = rec.get('path');
    const linkpath = rec.get('linkpath');
    const size = rec.get('size');
    if (path !== undefined) pending.path = path;
    if (linkpath !== undefined) pending.linkpath = linkpath;
    if (size !== undefined) {
      if (!/^\d{1,16}$/.test(size) || !Number.isSafeInteger(Number(size))) {
        throw archiveError(where, `PAX header at byte ${offset} has a malformed size "${size.slice(0, 32)}"`, { offset });
      }
      pending.size = Number(size);
    }
  }
  // Global PAX headers ('g') carry defaults such as comments; no image archive relies on them.
}

/**
 * The extended headers (PAX, GNU long names) seen since the last real entry,
 * as both tar scanners (seekable and streaming) walk an archive.
 */
export class ExtendedHeaders {
  private pending: PendingMeta = {};
  private since = -1;

  constructor(private readonly where: string) {}

  static is(h: RawHeader): boolean {
    return h.type === 'pax' || h.type === 'pax-global' || h.type === 'gnu-longname' || h.type === 'gnu-longlink';
  }

  /** Refuses an extended header too large to hold, before its data is read. */
  checkSize(h: RawHeader, offset: number): void {
    if (h.size > MAX_META_BYTES) {
      throw archiveError(this.where, `extended header at byte ${offset} is ${h.size} bytes (limit ${MAX_META_BYTES})`, { offset });
    }
  }

  add(h: RawHeader, data: Buffer, offset: number): void {
    if (h.type === 'pax-global') return;
    applyMeta(this.pending, h, data, this.where, offset);
    if (this.since < 0) this.since = offset;
  }

  /** The next real entry's header with the pending values applied; they are used up. */
  apply(h: RawHeader): RawHeader {
    const out = withMeta(h, this.pending);
    this.pending = {};
    this.since = -1;
    return out;
  }

  /** At the end-of-archive marker: an extended header must not be left dangling. */
  end(): void {
    if (this.since >= 0) {
      throw archiveError(this.where, `extended header at byte ${this.since} is not followed by an entry`, { offset: this.since });
    }
  }
}

/** The header with pending extended values applied. */
function withMeta(h: RawHeader, pending: PendingMeta): RawHeader {
  return {
    ...h,
    name: pending.path ?? h.name,
    linkname: pending.linkpath ?? h.linkname,
    size: pending.size !== undefined && !HEADER_ONLY.has(h.type) ? pending.size : h.size,
  };
}

/**
 * The canonical form of an entry name: no `./` prefix, no `.` or empty
 * components, no trailing slash. "" is the archive root. Refuses absolute
 * names and `..` components (EUNSAFEPATH) rather than cleaning them up.
 */
export function normaliseEntryName(raw: string, where: string): string {
  if (raw.startsWith('/')) throw unsafePathError(where, `entry "${raw}" has an absolute path`, raw);
  if (raw.includes('\0')) throw unsafePathError(where, `entry name contains a NUL byte`, raw);
  const parts: string[] = [];
  for (const p of raw.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw unsafePathError(where, `entry "${raw}" has a ".." component`, raw);
    parts.push(p);
  }
  return parts.join('/');
}

/**
 * A link target as an entry name. Symlinks are relative to the link's
 * directory, hard links to the archive root; either way the result must stay
 * inside the archive (EUNSAFEPATH otherwise).
 */
export function resolveLinkTarget(linkName: string, target: string, kind: 'symlink' | 'link', where: string): string {
  if (target === '') throw archiveError(where, `link "${linkName}" has an empty target`, { entry: linkName });
  if (target.startsWith('/')) throw unsafePathError(where, `link "${linkName}" points to an absolute path "${target}"`, linkName);
  const base = kind === 'symlink' ? posix.dirname(linkName) : '.';
  const parts: string[] = base === '.' ? [] : base.split('/');
  for (const p of target.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (parts.length === 0) throw unsafePathError(where, `link "${linkName}" points outside the archive ("${target}")`, linkName);
      parts.pop();
    } else parts.push(p);
  }
  return parts.join('/');
}

export type EntryType = 'file' | 'directory' | 'symlink' | 'link';

export interface TarEntry {
  /** Normalised name (see normaliseEntryName). */
  name: string;
  type: EntryType;
  size: number;
  /** For links: the normalised name of the target entry. */
  target?: string;
  /** Where the data starts in the (uncompressed) archive. */
  offset: number;
}

/**
 * One archive's entries by normalised name. Rules (the same for every input):
 * regular files, directories and links that stay inside the archive are
 * accepted; devices, FIFOs and unknown types are refused (no image archive
 * has them); a name may appear once (directories may repeat); a name may not
 * be both a file and a directory.
 */
export class EntryTable<E extends TarEntry = TarEntry> {
  private readonly map = new Map<string, E>();

  constructor(readonly where: string) {}

  get size(): number {
    return this.map.size;
  }

  /** Checks `h` (already merged with its extended headers) and turns it into an entry; undefined for the root dir. */
  static toEntry(h: RawHeader, offset: number, where: string): TarEntry | undefined {
    const name = normaliseEntryName(h.name, where);
    if (h.type === 'char' || h.type === 'block' || h.type === 'fifo' || h.type === 'unknown') {
      throw archiveError(where, `entry "${h.name}" has type ${h.type === 'unknown' ? `"${h.typeflag}"` : h.type}, which an image archive never holds`, {
        entry: h.name,
      });
    }
    if (name === '') {
      if (h.type === 'directory') return undefined;
      throw archiveError(where, `entry "${h.name}" names the archive root but is not a directory`, { entry: h.name });
    }
    if (h.type === 'symlink' || h.type === 'link') {
      return { name, type: h.type, size: 0, target: resolveLinkTarget(name, h.linkname, h.type, where), offset };
    }
    if (h.type === 'directory' || h.type === 'file') return { name, type: h.type, size: h.size, offset };
    throw archiveError(where, `entry "${h.name}" is an unexpected ${h.type} header`, { entry: h.name });
  }

  add(e: E): void {
    if (this.map.size >= MAX_ENTRIES) throw archiveError(this.where, `more than ${MAX_ENTRIES} entries`, {});
    const had = this.map.get(e.name);
    if (had) {
      if (had.type === 'directory' && e.type === 'directory') return;
      throw archiveError(this.where, `entry "${e.name}" appears more than once`, { entry: e.name });
    }
    this.map.set(e.name, e);
  }

  /** Whole-archive checks once every entry is in: no name is both a file and a directory. */
  finish(): void {
    for (const name of this.map.keys()) {
      for (let i = name.indexOf('/'); i > 0; i = name.indexOf('/', i + 1)) {
        const parent = this.map.get(name.slice(0, i));
        if (parent && parent.type !== 'directory') {
          throw archiveError(this.where, `entry "${parent.name}" is a ${parent.type} but "${name}" is inside it`, { entry: name });
        }
      }
    }
  }

  get(name: string): E | undefined {
    return this.map.get(name);
  }

  entries(): IterableIterator<E> {
    return this.map.values();
  }

  /**
   * The regular file `name` stands for, following links inside the archive;
   * undefined when there is none. Only the last component may be a link
   * (docker save links files, never directories). Throws on link loops.
   */
  resolveFile(name: string): E | undefined {
    let n = name;
    for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
      const e = this.map.get(n);
      if (!e) return undefined;
      if (e.type === 'file') return e;
      if (e.type === 'directory' || e.target === undefined) return undefined;
      n = e.target;
    }
    throw archiveError(this.where, `entry "${name}" is a link loop or a chain of more than ${MAX_LINK_HOPS} links`, { entry: name });
  }

  /** resolveFile, for a file the reader listed: EARCHIVE when it is not there. */
  requireFile(name: string): E {
    const e = this.resolveFile(name);
    if (!e) throw archiveError(this.where, `entry "${name}" is missing`, { entry: name });
    return e;
  }
}
