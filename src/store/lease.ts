/**
 * Leases keep GC away from blobs that a pull is writing or is about to name.
 *
 * A writer (pull, load) holds a lease file `leases/<pid>-<rand>` for its whole
 * run; GC runs only when no live lease exists, so it never sees a blob that
 * is committed but not yet tagged. The handshake is Dekker-style, on two
 * files instead of two flags:
 *
 *   writer: create lease  → then look for the gc lock → present: drop lease, wait, retry
 *   GC:     take gc lock  → then list leases          → live ones: wait for them
 *
 * Whichever of the two looks second sees the other's file, so either GC
 * waits for the writer or the writer waits for GC; they can never both go
 * ahead. (Checking the gc lock also before creating the lease only avoids
 * needless create/remove churn while a GC runs.) Leases of dead processes
 * are removed by GC; a killed pull therefore never blocks anyone for long.
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { S2nError, sysCode } from '../errors.js';
import { isPidAlive, pidOfPrivateName, privateName, sleep, writeNewFile } from './fsutil.js';
import { isHolderDead, newLockInfo, readLockState, waitUntilFree, type LockInfo } from './lock.js';

export interface LeaseOptions {
  /** How long to wait for a running GC before giving up; default 15 min. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called once if we have to wait for GC. */
  onWait?: (message: string) => void;
}

export interface LeaseEntry {
  name: string;
  path: string;
  pid: number;
  info: LockInfo | undefined;
  live: boolean;
}

const DEFAULT_LEASE_WAIT_MS = 15 * 60_000;

/** The leases in `dir`, with liveness; foreign files (other names) are ignored. */
export async function listLeases(dir: string): Promise<LeaseEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (sysCode(e) === 'ENOENT') return [];
    throw e;
  }
  const out: LeaseEntry[] = [];
  for (const name of names) {
    const pid = pidOfPrivateName(name);
    if (pid === undefined) continue;
    const path = join(dir, name);
    let info: LockInfo | undefined;
    try {
      const v = JSON.parse(await readFile(path, 'utf8')) as unknown;
      if (typeof v === 'object' && v !== null && typeof (v as LockInfo).hostname === 'string') info = v as LockInfo;
    } catch (e) {
      if (sysCode(e) === 'ENOENT') continue; // released while we looked
      // Half-written (its writer died mid-write): the pid in the name still tells.
    }
    const live = info ? !isHolderDead({ pid, hostname: info.hostname, ...(info.boot ? { boot: info.boot } : {}) }) : isPidAlive(pid);
    out.push({ name, path, pid, info, live });
  }
  return out;
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch((e: unknown) => {
    if (sysCode(e) !== 'ENOENT') throw e;
  });
}

/** Runs `fn` holding a lease (see the file comment); waits for a running GC first. */
export async function withLease<T>(leasesDir: string, gcLockPath: string, fn: () => Promise<T>, opts: LeaseOptions = {}): Promise<T> {
  const timeout = opts.timeoutMs ?? DEFAULT_LEASE_WAIT_MS;
  const start = Date.now();
  let told = false;
  const lockOpts = {
    what: 'the store for garbage collection',
    ...(opts.signal ? { signal: opts.signal } : {}),
    onWait: () => {
      if (!told) opts.onWait?.('waiting for a running `s2n-oci prune` to finish');
      told = true;
    },
  };
  let path: string;
  for (;;) {
    await waitUntilFree(gcLockPath, { ...lockOpts, timeoutMs: Math.max(0, timeout - (Date.now() - start)) });
    path = join(leasesDir, privateName());
    await writeLease(path);
    const gc = await readLockState(gcLockPath);
    // A gc lock left by a dead process sweeps nothing: no need to wait for it.
    if (gc.kind === 'free' || gc.stale) break;
    await removeQuietly(path);
    if (Date.now() - start >= timeout) {
      throw new S2nError('ELOCKED', 'take store lease: garbage collection is still running', {
        hint: `wait for \`s2n-oci prune\` to finish, or, if none is running, remove ${gcLockPath}`,
        context: { path: gcLockPath },
      });
    }
    await sleep(20 + Math.random() * 30, opts.signal);
  }
  try {
    return await fn();
  } finally {
    await removeQuietly(path);
  }
}

async function writeLease(path: string): Promise<void> {
  try {
    await writeNewFile(path, JSON.stringify(newLockInfo()));
  } catch (e) {
    if (sysCode(e) !== 'ENOENT') throw e;
    // leases/ was removed under us (someone cleaned the store by hand): recreate it once.
    await mkdir(join(path, '..'), { recursive: true });
    await writeNewFile(path, JSON.stringify(newLockInfo()));
  }
}

export interface LeaseWaitOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Remove leases of dead processes (default true; false for a dry run). */
  removeDead?: boolean;
  /** Called once with the live leases when GC has to wait for them. */
  onWait?: (live: LeaseEntry[]) => void;
}

/**
 * For GC, holding the gc lock: removes leases of dead processes and waits until
 * no live one is left. ELOCKED after `timeoutMs` (default 10 min). Returns the
 * number of dead leases found (and removed unless `removeDead` is false).
 */
export async function waitForLeases(dir: string, opts: LeaseWaitOptions = {}): Promise<number> {
  const timeout = opts.timeoutMs ?? 10 * 60_000;
  const start = Date.now();
  let removed = 0;
  let told = false;
  let delay = 10;
  for (;;) {
    opts.signal?.throwIfAborted();
    const leases = await listLeases(dir);
    for (const l of leases) {
      if (!l.live && opts.removeDead !== false) {
        await removeQuietly(l.path);
        removed++;
      }
    }
    const live = leases.filter((l) => l.live);
    if (live.length === 0) return removed;
    if (!told) {
      told = true;
      opts.onWait?.(live);
    }
    const waited = Date.now() - start;
    if (waited >= timeout) {
      const pids = [...new Set(live.map((l) => l.pid))].join(', ');
      throw new S2nError('ELOCKED', `collect garbage: ${live.length} pull(s) still running (pid ${pids}) after ${Math.round(waited / 1000)} s`, {
        hint: `wait for them to finish and run prune again; if no s2n-oci process is running, remove the files in ${dir}`,
        context: { path: dir, leases: live.map((l) => l.name) },
      });
    }
    await sleep(Math.min(delay, timeout - waited), opts.signal);
    delay = Math.min(delay * 1.5, 250);
  }
}
