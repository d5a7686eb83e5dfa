/**
 * Layers → rootfs. Each layer is decompressed by content (gzip, zstd or
 * plain tar), hashed as it streams (the diff_id), framed by TarGuard, parsed
 * by tar-stream, and applied entry by entry inside the root: every path is
 * resolved with chroot semantics (resolve.ts), whiteouts and opaque
 * directories remove lower-layer content only, directory modes and mtimes are
 * set after the layer's last entry. A diff_id mismatch is an EDIGEST after
 * the layer was applied: the caller discards the rootfs.
 */
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  constants as fsc,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { realpath, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { S2nError, sysCode } from '../errors.js';
import { parseDigest, type DigestAlgorithm } from '../oci/digest.js';
import type { Digest } from '../oci/types.js';
import { decompressor, detectCompression } from '../sources/archive/decompress.js';
import { entryComponents, resolveComponentsSync, unsafeEntry } from './resolve.js';
import { malformed, TarGuard, type Xattr } from './tar-guard.js';

export type WarningKind = 'device' | 'xattr' | 'pax-global' | 'trailing-data' | 'aufs-meta';

export interface UnpackWarning {
  kind: WarningKind;
  message: string;
  /** The first entry concerned. */
  entry?: string;
}

export interface ApplyLayerOptions {
  /** Expected digest of the uncompressed tar; a mismatch is EDIGEST. */
  diffId?: Digest;
  /** Called at most once per kind per layer. */
  onWarning?: (w: UnpackWarning) => void;
  /** 'real': chown each entry to its uid/gid (needs root or a user namespace); 'none': leave ownership alone. */
  ownership: 'real' | 'none';
  /** The zstd program for Node versions without a zstd decoder. */
  zstdProgram?: string;
  /** The setfattr program (package attr) that applies extended attributes. */
  setfattr?: string;
}

export interface ApplyLayerResult {
  /** Digest of the uncompressed tar, as computed. */
  diffId: Digest;
  /** Tar entries seen (whiteouts and skipped entries included). */
  entries: number;
  /** Uncompressed bytes. */
  size: number;
  compression: 'gzip' | 'zstd' | 'none';
  /** Entries not created: device nodes and FIFOs. */
  skipped: number;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const S_ISGID = 0o2000;

interface DeferredDir {
  abs: string;
  mode: number;
  mtime: Date;
}

/** Read the first bytes to sniff compression, then replay them in front of the rest. */
async function sniff(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let len = 0;
  let done = false;
  while (len < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    chunks.push(c);
    len += c.length;
  }
  const head = Buffer.concat(chunks);
  async function* replay(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (done) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  const stream = Readable.from(replay(), { objectMode: false });
  stream.on('close', () => {
    if (!done) void it.return?.();
  });
  return { head, stream };
}

/**
 * Applies entries with synchronous syscalls: an unpack is thousands of tiny
 * lstat/open/chown/utimes calls, and a thread-pool round trip each (the
 * promise API) cost more than the calls themselves, while decompression
 * still runs on the pool beside us. Missing paths are probed with
 * `throwIfNoEntry: false` or by trying the create first (O_EXCL), since a
 * thrown ENOENT with its stack is the most expensive part of an lstat.
 */
class LayerApplier {
  /** Keys (root-relative resolved paths) this layer created or replaced. */
  private readonly created = new Set<string>();
  /** Every ancestor of a created key ('' is the root). */
  private readonly ancestors = new Set<string>();
  private readonly dirs: DeferredDir[] = [];
  private readonly warned = new Set<WarningKind>();
  private readonly restore = new Map<string, number>();
  /**
   * Entry parent name → its resolved components, each an existing real
   * directory (ensureDirs made sure). Only a removal of a directory can make
   * such a resolution stale (a symlink put in its place goes through a
   * removal first), so every removal of a directory clears the cache.
   */
  private readonly parents = new Map<string, ParentDir>();
  private readonly asRoot = process.getuid?.() === 0;
  /**
   * Who owns a file we create, and the permission bits open() can set by
   * itself: when an entry asks for exactly that, the fchown/fchmod pair (a
   * third of the syscalls of a small file) is skipped.
   */
  private readonly self: [number, number] = [process.geteuid?.() ?? -1, process.getegid?.() ?? -1];
  private readonly umask = currentUmask();
  skipped = 0;
  /** Set when entry() read the body to its end. */
  bodyConsumed = false;

  constructor(
    private readonly root: string,
    private readonly opts: ApplyLayerOptions,
  ) {}

  warn(kind: WarningKind, message: string, entry?: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.opts.onWarning?.({ kind, message, ...(entry === undefined ? {} : { entry }) });
  }

  private abs(key: string): string {
    return key === '' ? this.root : `${this.root}/${key}`;
  }

  private mark(key: string): void {
    this.created.add(key);
    for (let i = key.indexOf('/'); i >= 0; i = key.indexOf('/', i + 1)) this.ancestors.add(key.slice(0, i));
    this.ancestors.add('');
  }

  /** The resolved parent of an entry, every component made an existing real directory. */
  private parentOf(parts: readonly string[], entry: string): ParentDir {
    const name = parts.slice(0, -1).join('/');
    const hit = this.parents.get(name);
    if (hit !== undefined) return hit;
    const dir = this.extendParent(parts) ?? this.resolveParent(parts, entry);
    this.parents.set(name, dir);
    return dir;
  }

  /**
   * The usual miss: the grandparent is cached (an existing real directory,
   * no symlink in it), so only the last component needs a look. A symlink
   * or anything else unusual falls back to the full resolution.
   */
  private extendParent(parts: readonly string[]): ParentDir | undefined {
    if (parts.length < 2) return undefined;
    const up = this.parents.get(parts.slice(0, -2).join('/'));
    const c = parts[parts.length - 2]!;
    if (up === undefined) return undefined;
    const key = up.parts.length === 0 ? c : `${up.parts.join('/')}/${c}`;
    const st = lstatSync(this.abs(key), { throwIfNoEntry: false });
    if (st === undefined || !st.isDirectory()) return undefined;
    this.writable(this.abs(key), st.mode);
    return { parts: [...up.parts, c], ownGroup: this.ownGroup(st) };
  }

  private resolveParent(parts: readonly string[], entry: string): ParentDir {
    const resolved = resolveComponentsSync(this.root, parts.slice(0, -1), entry);
    return { parts: resolved, ownGroup: this.ensureDirs(resolved, entry) };
  }

  /** Make every component of `parts` an existing real directory. Returns ParentDir.ownGroup of the last one. */
  private ensureDirs(parts: readonly string[], entry: string): boolean {
    let key = '';
    let ownGroup = false;
    for (let i = 0; i <= parts.length; i++) {
      if (i > 0) key = i === 1 ? parts[0]! : `${key}/${parts[i - 1]!}`;
      const p = this.abs(key);
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (st === undefined) {
        mkdirSync(p, { mode: 0o755 });
        ownGroup = false; // its group and setgid bit may come from its parent: not worth a look
        continue;
      }
      if (!st.isDirectory()) throw malformed(`entry "${entry}": parent ${key} is not a directory`, { entry });
      ownGroup = this.ownGroup(st);
      this.writable(p, st.mode);
    }
    return ownGroup;
  }

  /** As a user, a parent directory of a lower layer without owner write/search bits gets them for the layer (restored in finish). */
  private writable(p: string, mode: number): void {
    if (!this.asRoot && (mode & 0o300) !== 0o300 && !this.restore.has(p)) {
      this.restore.set(p, mode & 0o7777);
      chmodSync(p, (mode & 0o7777) | 0o700);
    }
  }

  /** See ParentDir.ownGroup. */
  private ownGroup(st: { mode: number; gid: number }): boolean {
    return (st.mode & S_ISGID) === 0 && st.gid === this.self[1];
  }

  /**
   * chown is a no-op when the entry's owner is who creates the file and the
   * new file got that group too; its other effect, clearing setuid/setgid
   * bits, does not matter since the mode is set after it.
   */
  private needsChown(uidgid: [number, number], parent: ParentDir): boolean {
    return this.opts.ownership === 'real' && (!parent.ownGroup || uidgid[0] !== this.self[0] || uidgid[1] !== this.self[1]);
  }

  /** Remove a whole tree (a directory of a lower layer). */
  private async removeTree(abs: string): Promise<void> {
    this.parents.clear();
    await rm(abs, { recursive: true, force: true });
  }

  /** Remove whatever is at `abs` (a directory recursively), never following a symlink. Returns true when a directory was kept. */
  private async clear(abs: string, keepDir: boolean): Promise<boolean> {
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) return false;
    if (st.isDirectory()) {
      if (keepDir) return true;
      await this.removeTree(abs);
    } else unlinkSync(abs);
    return false;
  }

  /** Runs `create`; if something is in the way (EEXIST), clears it and runs it again. */
  private async replace<T>(abs: string, create: () => T): Promise<T> {
    try {
      return create();
    } catch (e) {
      if (sysCode(e) !== 'EEXIST') throw e;
    }
    await this.clear(abs, false);
    return create();
  }

  /** Remove lower-layer content at `key`, keeping what this layer created. */
  private async removeLower(key: string): Promise<void> {
    const abs = this.abs(key);
    if (this.created.has(key) || this.ancestors.has(key)) {
      const st = lstatSync(abs, { throwIfNoEntry: false });
      if (!st?.isDirectory()) return;
      for (const c of readdirSync(abs)) await this.removeLower(key === '' ? c : `${key}/${c}`);
      return;
    }
    await this.removeTree(abs);
  }

  async entry(header: tar.Header, body: Readable, xattrs: readonly Xattr[] = []): Promise<void> {
    const name = header.name;
    if (name.includes('\uFFFD') || (header.linkname ?? '').includes('\uFFFD')) {
      throw unsafeEntry(name, 'has a name that is not valid UTF-8 (two different names could collide)');
    }
    const parts = entryComponents(name);
    const base = parts[parts.length - 1];

    if (base !== undefined && base.startsWith(WHITEOUT)) {
      // A whiteout's parent is resolved (symlinks followed inside the root) but never created.
      const parentKey = resolveComponentsSync(this.root, parts.slice(0, -1), name).join('/');
      if (base === OPAQUE) {
        let st;
        try {
          st = lstatSync(this.abs(parentKey), { throwIfNoEntry: false });
        } catch (e) {
          if (sysCode(e) === 'ENOTDIR') return;
          throw e;
        }
        if (!st?.isDirectory()) return;
        for (const c of readdirSync(this.abs(parentKey))) await this.removeLower(parentKey === '' ? c : `${parentKey}/${c}`);
        return;
      }
      if (base.startsWith(`${WHITEOUT}${WHITEOUT}`)) {
        this.warn('aufs-meta', `ignored AUFS metadata entry "${name}"`, name);
        return;
      }
      const target = base.slice(WHITEOUT.length);
      if (target === '' || target === '.' || target === '..') throw unsafeEntry(name, 'is a whiteout of no file, of "." or of ".."');
      const key = parentKey === '' ? target : `${parentKey}/${target}`;
      // Same-layer files are not hidden by the layer's own whiteouts (image-spec layer.md).
      if (this.created.has(key)) return;
      await this.removeLower(key);
      return;
    }

    const type = header.type;
    if (base === undefined) {
      // The root itself: only a directory entry may name it (its metadata applies to the root).
      if (type !== 'directory') throw unsafeEntry(name, `names the root as a ${type ?? 'entry of unknown type'}`);
      this.meta(this.root, header);
      this.dirs.push({ abs: this.root, mode: header.mode ?? 0o755, mtime: mtimeOf(header) });
      return;
    }
    const parent = this.parentOf(parts, name);
    const parentKey = parent.parts.join('/');
    const key = parentKey === '' ? base : `${parentKey}/${base}`;
    const abs = this.abs(key);

    switch (type) {
      case 'directory': {
        let fresh = true;
        try {
          mkdirSync(abs, { mode: 0o700 });
        } catch (e) {
          if (sysCode(e) !== 'EEXIST') throw e;
          fresh = !(await this.clear(abs, true));
          if (fresh) mkdirSync(abs, { mode: 0o700 });
        }
        const ids = owner(header);
        if (!fresh || this.needsChown(ids, parent)) this.meta(abs, header);
        this.dirs.push({ abs, mode: header.mode ?? 0o755, mtime: mtimeOf(header) });
        break;
      }
      case 'file':
      case 'contiguous-file': {
        const mode = (header.mode ?? 0o644) & 0o7777;
        // open() sets plain permission bits itself when the umask keeps them; setuid/setgid/sticky wait for fchmod, after chown.
        const direct = (mode & 0o7000) === 0 && (mode & this.umask) === 0;
        const fd = await this.replace(abs, () => openSync(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, direct ? mode : 0o600));
        try {
          for await (const chunk of body as AsyncIterable<Buffer>) writeAll(fd, chunk);
          this.bodyConsumed = true;
          const ids = owner(header);
          if (this.needsChown(ids, parent)) fchownSync(fd, ...ids);
          if (!direct) fchmodSync(fd, mode); // after chown, which clears setuid/setgid
          const t = mtimeOf(header);
          futimesSync(fd, t, t);
        } finally {
          closeSync(fd);
        }
        break;
      }
      case 'symlink': {
        await this.replace(abs, () => symlinkSync(header.linkname ?? '', abs));
        if (this.opts.ownership === 'real') lchownSync(abs, ...owner(header));
        const t = mtimeOf(header);
        lutimesSync(abs, t, t);
        break;
      }
      case 'link': {
        const tparts = entryComponents(header.linkname ?? '');
        if (tparts.length === 0) throw unsafeEntry(name, 'is a hard link to the root');
        const tparent = resolveComponentsSync(this.root, tparts.slice(0, -1), name);
        const tkey = [...tparent, tparts[tparts.length - 1]!].join('/');
        const tabs = this.abs(tkey);
        let st;
        try {
          st = lstatSync(tabs, { throwIfNoEntry: false });
        } catch (e) {
          if (sysCode(e) !== 'ENOTDIR') throw e;
        }
        if (st === undefined) {
          throw malformed(`entry "${name}": hard link target "${header.linkname ?? ''}" does not exist`, { entry: name, target: header.linkname });
        }
        if (st.isDirectory()) throw unsafeEntry(name, `is a hard link to a directory ("${header.linkname ?? ''}")`);
        if (tkey === key) break;
        await this.replace(abs, () => linkSync(tabs, abs)); // link(2) does not follow a symlink target
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        // Node cannot mknod, as root or not: the entry is skipped (what was there is removed).
        await this.clear(abs, false);
        this.skipped++;
        this.warn('device', `skipped device nodes and FIFOs (cannot be created here), first: "${name}"`, name);
        break;
      }
      default:
        throw malformed(`entry "${name}" has an unsupported type (${String(type)})`, { entry: name });
    }
    this.mark(key);
    // After ownership and mode: chown clears security.capability.
    if (xattrs.length > 0) this.setXattrs(abs, xattrs, name);
  }

  /**
   * Extended attributes through setfattr (package attr): Node.js has no
   * xattr API. `-h` acts on the entry itself, never on a symlink's target,
   * and runs right after the entry was created through a path resolved
   * inside the root, before any later entry can change that path. What the
   * kernel refuses here (trusted.* rootless, user.* on a symlink) is skipped
   * with one warning, as is everything when setfattr is missing.
   */
  private setXattrs(abs: string, xattrs: readonly Xattr[], name: string): void {
    for (const x of xattrs) {
      const r = spawnSync(this.opts.setfattr ?? 'setfattr', ['-h', '-n', x.name, '-v', `0s${x.value.toString('base64')}`, '--', abs], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
      if (r.error !== undefined) {
        this.warn('xattr', `extended attributes were not applied: setfattr (package attr) is not installed; first on "${name}"`, name);
        return;
      }
      if (r.status !== 0) {
        const why = (r.stderr ?? '').trim().split('\n')[0]?.replace(/^setfattr: .*?: /, '') ?? `exit ${r.status}`;
        this.warn('xattr', `some extended attributes could not be set here (${x.name} on "${name}": ${why})`, name);
      }
    }
  }

  private meta(abs: string, header: tar.Header): void {
    if (this.opts.ownership === 'real') lchownSync(abs, ...owner(header));
  }

  /** Directory modes and mtimes, after all entries of the layer. */
  async finish(): Promise<void> {
    for (const [p, mode] of this.restore) {
      try {
        chmodSync(p, mode);
      } catch {
        /* removed meanwhile */
      }
    }
    for (let i = this.dirs.length - 1; i >= 0; i--) {
      const d = this.dirs[i]!;
      const st = lstatSync(d.abs, { throwIfNoEntry: false });
      if (!st?.isDirectory()) continue;
      chmodSync(d.abs, d.mode & 0o7777);
      lutimesSync(d.abs, d.mtime, d.mtime);
    }
  }
}

interface ParentDir {
  /** Resolved components, relative to the root: each an existing real directory. */
  parts: string[];
  /**
   * Files created in it surely get the creator's group: it is not setgid and
   * its own group is the creator's (so a `grpid` mount, where files always
   * take the directory's group, gives the same).
   */
  ownGroup: boolean;
}

/** The process umask, read without changing it for long (process.umask() with no argument is deprecated). */
function currentUmask(): number {
  try {
    const m = process.umask(0o022);
    process.umask(m);
    return m;
  } catch {
    return 0o777; // a worker thread cannot ask: always fchmod
  }
}

function writeAll(fd: number, chunk: Buffer): void {
  for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
}

/** A Node system error (ENOSPC, EACCES...), as opposed to a stream or parser error. */
function isSystemError(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'syscall' in e && sysCode(e) !== undefined;
}

function paxNumber(header: tar.Header, key: string): number | undefined {
  const v = (header.pax as Record<string, string> | null | undefined)?.[key];
  if (v === undefined || !/^\d+(\.\d+)?$/.test(v)) return undefined;
  return Number(v);
}

function owner(header: tar.Header): [number, number] {
  const uid = paxNumber(header, 'uid') ?? header.uid ?? 0;
  const gid = paxNumber(header, 'gid') ?? header.gid ?? 0;
  return [Math.trunc(uid), Math.trunc(gid)];
}

function mtimeOf(header: tar.Header): Date {
  const pax = paxNumber(header, 'mtime');
  if (pax !== undefined) return new Date(pax * 1000);
  return header.mtime ?? new Date(0);
}

const GUARD_TYPES: Record<string, string> = {
  '0': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
  '7': 'contiguous-file',
};

/** Apply one layer (a tar, gzip'd tar or zstd'd tar stream) onto `rootfs`. */
export async function applyLayer(rootfs: string, layer: Readable, opts: ApplyLayerOptions): Promise<ApplyLayerResult> {
  const algorithm: DigestAlgorithm = opts.diffId === undefined ? 'sha256' : parseDigest(opts.diffId).algorithm;
  const { head, stream } = await sniff(layer, 6);
  const c = detectCompression(head);
  if (c === 'bzip2' || c === 'xz') {
    stream.destroy();
    throw malformed(`${c}-compressed layers are not supported`, { compression: c });
  }
  const applier = new LayerApplier(await realpath(rootfs), opts);
  const guard = new TarGuard(algorithm);
  const extract = tar.extract();
  // Listen for entries before any byte flows: tar-stream's iterator only sees entries emitted after it was made.
  const entryIterator = { [Symbol.asyncIterator]: ((it) => () => it)(extract[Symbol.asyncIterator]()) };
  const stages: NodeJS.ReadWriteStream[] = c === 'none' ? [] : [decompressor(c, 'layer', opts.zstdProgram)];
  const feeding = (pipeline as unknown as (...s: unknown[]) => Promise<void>)(stream, ...stages, guard, extract);
  feeding.catch(() => {}); // surfaced through the iterator or awaited below

  let entries = 0;
  try {
    for await (const entryStream of entryIterator) {
      const body = entryStream as unknown as Readable & { header: tar.Header };
      const header = body.header;
      const framed = guard.entries.shift();
      const expectedType = framed === undefined ? undefined : GUARD_TYPES[framed.typeflag] ?? null;
      const isDirByName = framed?.typeflag === '0' && header.type === 'directory';
      if (framed === undefined || (!isDirByName && expectedType !== header.type) || (header.type !== 'directory' && framed.size !== header.size)) {
        throw malformed(`tar parsers disagree about entry "${header.name}"`, { entry: header.name });
      }
      entries++;
      applier.bodyConsumed = false;
      await applier.entry(header, body, framed.xattrs);
      // Drain what the entry did not read (whiteouts with data, skipped entries).
      if (!applier.bodyConsumed) {
        for await (const _ of body as AsyncIterable<unknown>) {
          /* discard */
        }
      }
    }
    await feeding;
  } catch (e) {
    stream.destroy();
    extract.destroy();
    const fed = await feeding.then(
      () => undefined,
      (x: unknown) => x,
    );
    // The first meaningful error: ours (guard, decompressor, entry checks), a system error, else tar-stream's.
    if (e instanceof S2nError || isSystemError(e)) throw e;
    if (fed instanceof S2nError || isSystemError(fed)) throw fed;
    throw malformed(`cannot read the tar (${e instanceof Error ? e.message : String(e)})`, { cause: String(e) });
  }
  await applier.finish();
  if (guard.globalHeaders > 0) applier.warn('pax-global', `ignored ${guard.globalHeaders} PAX global header(s)`);
  if (guard.trailingData) applier.warn('trailing-data', 'ignored data after the end-of-archive marker');
  const diffId = guard.hasher.digest();
  if (opts.diffId !== undefined && diffId !== opts.diffId) {
    throw new S2nError('EDIGEST', `apply layer: uncompressed content has digest ${diffId}, the image config says ${opts.diffId}`, {
      hint: 'the layer does not match the image config; discard the rootfs and pull the image again',
      context: { expected: opts.diffId, actual: diffId },
    });
  }
  return { diffId, entries, size: guard.hasher.bytes, compression: c, skipped: applier.skipped };
}

export interface LayerToApply {
  open(): Promise<Readable>;
  diffId: Digest;
}

export interface UnpackImageOptions extends Omit<ApplyLayerOptions, 'diffId'> {}

/** Apply `layers` in order (bottom first); each warning kind is reported once for the whole image. */
export async function unpackImage(rootfs: string, layers: readonly LayerToApply[], opts: UnpackImageOptions): Promise<ApplyLayerResult[]> {
  const seen = new Set<WarningKind>();
  const onWarning = (w: UnpackWarning): void => {
    if (seen.has(w.kind)) return;
    seen.add(w.kind);
    opts.onWarning?.(w);
  };
  const results: ApplyLayerResult[] = [];
  for (const [i, l] of layers.entries()) {
    const stream = await l.open();
    try {
      results.push(await applyLayer(rootfs, stream, { ...opts, diffId: l.diffId, onWarning }));
    } catch (e) {
      throw e instanceof S2nError ? e.withPrefix(`unpack layer ${i + 1}/${layers.length}`, { diffId: l.diffId }) : e;
    }
  }
  return results;
}
