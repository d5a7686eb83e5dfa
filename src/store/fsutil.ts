/** Small file-system helpers shared by the store, its locks, leases and GC. */
import { readFileSync } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { S2nError, sysCode } from '../errors.js';
import { randomBytes } from '../lazy-crypto.js';

/** 16 hex chars: enough that two processes never pick the same temp or lock name. */
export function randomId(): string {
  return randomBytes(8).toString('hex');
}

/** `<pid>-<random>`: the name of everything private to one process (ingest, leases, temp files). */
export function privateName(): string {
  return `${process.pid}-${randomId()}`;
}

/** The pid encoded at the start of a `<pid>-<random>` name, if any. */
export function pidOfPrivateName(name: string): number | undefined {
  const m = /^(\d+)-[0-9a-f]+$/.exec(name);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

export function thisHost(): string {
  return hostname();
}

/**
 * Whether `pid` names a live process on this host. kill(pid, 0) sends nothing:
 * ESRCH means no such process, EPERM means it exists but belongs to someone
 * else (alive). A reused pid reads as alive, which only makes us wait longer.
 */
export function isPidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return sysCode(e) === 'EPERM';
  }
}

/** Makes a rename/link/unlink inside `dir` durable: the entry itself lives in the directory. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (e) {
    // Some file systems (and some CI sandboxes) refuse fsync on directories; durability is best effort there.
    const c = sysCode(e);
    if (c !== 'EINVAL' && c !== 'ENOTSUP' && c !== 'EISDIR' && c !== 'EPERM') throw e;
  } finally {
    await fh?.close();
  }
}

/** Writes (and fsyncs) a new file; fails with EEXIST if it exists. */
export async function writeNewFile(path: string, data: string | Buffer): Promise<void> {
  const fh = await open(path, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    // Before the file is linked or renamed into place: after a power cut its name never points at empty content.
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The file's content, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    // Synchronous: used for the store's small JSON files (index, layout), read on every command.
    return readFileSync(path);
  } catch (e) {
    if (sysCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const IO_HINTS: Record<string, string> = {
  ENOSPC: 'the disk holding the store is full; free space or run `s2n-oci prune`',
  EDQUOT: 'the disk quota for the store is exhausted; free space or run `s2n-oci prune`',
  EROFS: 'the store is on a read-only file system; choose another with --root or S2N_OCI_ROOT',
  EACCES: 'no permission on the store directory; check its owner, or choose another with --root or S2N_OCI_ROOT',
  EPERM: 'no permission on the store directory; check its owner, or choose another with --root or S2N_OCI_ROOT',
  EIO: 'the disk reported an I/O error; check the file system holding the store',
};

/**
 * Turns a file-system error from the store's own files into ESTORE with a
 * hint; anything else (an S2nError such as EDIGEST from verification, a
 * network error from the source stream, an abort) passes through unchanged
 * so its own code reaches the user.
 */
export function storeIoError(e: unknown, what: string, path: string): unknown {
  if (e instanceof S2nError) return e;
  const code = sysCode(e);
  const hasSyscall = typeof e === 'object' && e !== null && 'syscall' in e;
  if (code === undefined || !hasSyscall || !(code in IO_HINTS)) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new S2nError('ESTORE', `${what}: ${msg}`, { hint: IO_HINTS[code], cause: e, context: { path, errno: code } });
}

/** A directory's entries; none when it (or a parent) does not exist. */
export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (sysCode(e) === 'ENOENT' || sysCode(e) === 'ENOTDIR') return [];
    throw e;
  }
}
