/**
 * Cross-process lock files.
 *
 * Why hand-written: Node has no flock(2), and the usual package
 * (proper-lockfile) decides staleness by mtime, which misfires both ways: a
 * long holder (a big pull) must keep touching the file or be "broken", and a
 * dead holder blocks everyone until the timeout passes. On one host pid
 * liveness is exact, so a lock records {pid, hostname, boot, started, nonce}
 * and is stale when its host is ours and its pid is dead (or the machine has
 * rebooted since). A lock held from another host is never broken; we wait and
 * then fail with ELOCKED naming the file.
 *
 * Taking: the content is written to a private temp file, fsynced, then
 * link(2)ed to the lock name. link fails with EEXIST like O_CREAT|O_EXCL,
 * but the lock appears complete, so nobody ever reads a half-written one.
 *
 * Breaking a stale lock is the delicate part: "read, see it is dead, unlink"
 * can race with another waiter that already broke it and took a fresh lock,
 * which we would then delete (two holders). So a breaker must first win a
 * claim file named after the stale lock's nonce (`<lock>.break-<nonce>`,
 * taken the same O_EXCL way), then re-read the lock and unlink it only if it
 * still carries that nonce. Only the claim winner may remove that instance
 * and its owner is dead, so between the re-read and the unlink nobody else
 * can replace it: the unlink removes exactly the stale lock. A claim whose
 * own holder died is broken the same way (claims of claims), recursively.
 */
import { link, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { S2nError, sysCode } from '../errors.js';
import { isPidAlive, randomId, sleep, thisHost, writeNewFile } from './fsutil.js';

export interface LockInfo {
  pid: number;
  hostname: string;
  /** ISO time the lock was taken, for messages. */
  started: string;
  /** Identifies this lock instance (pid + time can repeat). */
  nonce: string;
  /** Linux boot id: a lock from before a reboot is stale whatever its pid. */
  boot?: string;
}

export interface LockOptions {
  /** How long to wait for the holder; default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called once, when we first find the lock held by a live process. */
  onWait?: (holder: LockInfo | undefined) => void;
  /** For messages: what the lock protects ("the store index"). */
  what?: string;
}

export interface Lock {
  readonly path: string;
  readonly info: LockInfo;
  /** Removes the lock if it is still ours; safe to call twice. */
  release(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 60_000;
/** A lock file we cannot parse is a foreign or damaged file; only this old is it treated as stale. */
const UNREADABLE_STALE_MS = 60_000;
const MAX_BREAK_DEPTH = 4;

let bootIdCache: string | null | undefined;
function bootId(): string | undefined {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      bootIdCache = null;
    }
  }
  return bootIdCache ?? undefined;
}

export function newLockInfo(): LockInfo {
  const boot = bootId();
  return {
    pid: process.pid,
    hostname: thisHost(),
    started: new Date().toISOString(),
    nonce: randomId(),
    ...(boot ? { boot } : {}),
  };
}

function parseLockInfo(text: string): LockInfo | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null) return undefined;
    const o = v as Record<string, unknown>;
    if (typeof o.pid !== 'number' || typeof o.hostname !== 'string' || typeof o.nonce !== 'string') return undefined;
    return {
      pid: o.pid,
      hostname: o.hostname,
      nonce: o.nonce,
      started: typeof o.started === 'string' ? o.started : '',
      ...(typeof o.boot === 'string' ? { boot: o.boot } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote `info` is certainly gone. Unknown (another host) is not stale. */
export function isHolderDead(info: Pick<LockInfo, 'pid' | 'hostname' | 'boot'>): boolean {
  if (info.hostname !== thisHost()) return false;
  const boot = bootId();
  if (boot !== undefined && info.boot !== undefined && info.boot !== boot) return true;
  return !isPidAlive(info.pid);
}

export type LockState =
  | { kind: 'free' }
  | { kind: 'held'; info: LockInfo; id: string; stale: boolean }
  | { kind: 'unreadable'; id: string; stale: boolean };

/** What is at `path` now. `id` names this instance of the file for breakStale. */
export async function readLockState(path: string): Promise<LockState> {
  let text: string;
  let st;
  try {
    st = await stat(path);
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (sysCode(e) === 'ENOENT') return { kind: 'free' };
    throw e;
  }
  const info = parseLockInfo(text);
  if (info) return { kind: 'held', info, id: info.nonce.replace(/[^0-9A-Za-z]/g, ''), stale: isHolderDead(info) };
  return {
    kind: 'unreadable',
    id: `i${st.ino}m${Math.floor(st.mtimeMs)}`,
    stale: Date.now() - st.mtimeMs > UNREADABLE_STALE_MS,
  };
}

/** One attempt: true when we now hold `path`. */
async function tryCreate(path: string, info: LockInfo): Promise<boolean> {
  const tmp = `${path}.tmp-${process.pid}-${info.nonce}`;
  await writeNewFile(tmp, JSON.stringify(info));
  try {
    await link(tmp, path);
    return true;
  } catch (e) {
    if (sysCode(e) === 'EEXIST') return false;
    throw e;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Removes `path` only if it still carries `nonce`. Used by owners on release. */
async function unlinkIfOurs(path: string, nonce: string): Promise<void> {
  const state = await readLockState(path).catch(() => undefined);
  if (state?.kind === 'held' && state.info.nonce === nonce) {
    await unlink(path).catch((e: unknown) => {
      if (sysCode(e) !== 'ENOENT') throw e;
    });
  }
}

/**
 * Removes the stale lock instance `id` at `path`, if it is still there (see the
 * file comment). Returns false when someone else is breaking it right now.
 */
export async function breakStale(path: string, id: string, depth = 0): Promise<boolean> {
  const claim = `${path}.break-${id}`;
  const mine = newLockInfo();
  if (!(await tryCreate(claim, mine))) {
    const other = await readLockState(claim);
    if (other.kind !== 'free' && other.stale && depth < MAX_BREAK_DEPTH) await breakStale(claim, other.id, depth + 1);
    return false;
  }
  try {
    const now = await readLockState(path);
    if (now.kind !== 'free' && now.id === id) {
      await unlink(path).catch((e: unknown) => {
        if (sysCode(e) !== 'ENOENT') throw e;
      });
    }
    return true;
  } finally {
    await unlinkIfOurs(claim, mine.nonce);
  }
}

function lockedError(path: string, state: LockState, opts: LockOptions, waitedMs: number): S2nError {
  const what = opts.what ?? basename(path);
  const holder =
    state.kind === 'held'
      ? `held by pid ${state.info.pid} on ${state.info.hostname}${state.info.started ? ` since ${state.info.started}` : ''}`
      : 'held by an unknown process';
  return new S2nError('ELOCKED', `lock ${what}: ${holder}; gave up after ${Math.round(waitedMs / 1000)} s`, {
    hint: `another s2n-oci command is using the store; wait for it to finish, or, if no s2n-oci process is running${
      state.kind === 'held' && state.info.hostname !== thisHost() ? ` on ${state.info.hostname}` : ''
    }, remove ${path}`,
    context: { path, ...(state.kind === 'held' ? { holder: state.info } : {}) },
  });
}

/**
 * The shared wait loop: `attempt` returns true when done; between attempts
 * stale holders are broken and live ones waited for with growing pauses.
 */
async function waitLoop(path: string, opts: LockOptions, attempt: () => Promise<boolean>): Promise<void> {
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const start = Date.now();
  let delay = 5;
  let told = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    if (await attempt()) return;
    const state = await readLockState(path);
    if (state.kind === 'free') continue;
    if (state.stale) {
      if (await breakStale(path, state.id)) continue;
    } else if (!told) {
      told = true;
      opts.onWait?.(state.kind === 'held' ? state.info : undefined);
    }
    const waited = Date.now() - start;
    if (waited >= timeout) throw lockedError(path, state, opts, waited);
    await sleep(Math.min(delay, timeout - waited) + Math.random() * 5, opts.signal);
    delay = Math.min(delay * 1.5, 200);
  }
}

/** Takes the lock at `path`, waiting with backoff; ELOCKED after `timeoutMs`. */
export async function acquireLock(path: string, opts: LockOptions = {}): Promise<Lock> {
  const info = newLockInfo();
  await waitLoop(path, opts, () => tryCreate(path, info));
  let released = false;
  return {
    path,
    info,
    release: async () => {
      if (released) return;
      released = true;
      await unlinkIfOurs(path, info.nonce);
    },
  };
}

/**
 * Runs `fn` holding the lock, releasing it however `fn` ends. Not reentrant:
 * taking the same lock again inside `fn` waits for ourselves until ELOCKED.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const lock = await acquireLock(path, opts);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Waits until nobody live holds `path` (breaking a stale holder), without taking it. */
export async function waitUntilFree(path: string, opts: LockOptions = {}): Promise<void> {
  await waitLoop(path, opts, async () => (await readLockState(path)).kind === 'free');
}

/**
 * Housekeeping for a lock directory after crashes: temp files of dead
 * processes (private to them, so plain unlink is safe) and stale locks and
 * claims (through breakStale, never a blind unlink). Returns files removed.
 */
export async function cleanLockDir(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (sysCode(e) === 'ENOENT') return 0;
    throw e;
  }
  let removed = 0;
  for (const name of names) {
    const path = join(dir, name);
    const tmp = /\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    if (tmp?.[1] !== undefined) {
      if (!isPidAlive(Number(tmp[1]))) {
        await unlink(path).then(
          () => removed++,
          () => {},
        );
      }
      continue;
    }
    const state = await readLockState(path).catch(() => undefined);
    if (state && state.kind !== 'free' && state.stale && (await breakStale(path, state.id))) removed++;
  }
  return removed;
}

