/**
 * Garbage collection: mark everything reachable from index.json, sweep the
 * rest of blobs/, and clear what crashed processes left in ingest/, leases/
 * and locks/.
 *
 * Safety against concurrent pulls comes from leases (see lease.ts): GC takes
 * the gc lock, waits until no live lease is left (new writers wait for the gc
 * lock), and only then marks and sweeps. Mark and sweep also run under the
 * index lock, so a `tag`/`untag` done outside a lease (rmi, tag) can neither
 * add a reference to a blob mid-sweep nor be lost.
 */
import { existsSync } from 'node:fs';
import { stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { S2nError, isS2nError, sysCode } from '../errors.js';
import { isDigest } from '../oci/digest.js';
import { isIndexType, isManifestType } from '../oci/mediatypes.js';
import type { Descriptor, Digest } from '../oci/types.js';
import { isPidAlive, pidOfPrivateName, readdirOrEmpty } from './fsutil.js';
import { waitForLeases, type LeaseEntry } from './lease.js';
import { cleanLockDir, withLock } from './lock.js';
import type { ContentStore } from './store.js';

export interface GcOptions {
  /** Report what would be removed, remove nothing. */
  dryRun?: boolean;
  /** How long to wait for running pulls (live leases) and for the gc lock; default 10 min. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called once when GC has to wait for running pulls, with a message for the user. */
  onWait?: (message: string, leases: LeaseEntry[]) => void;
  /** Largest manifest or index read while marking; default 4 MiB (the distribution spec's manifest limit). */
  maxJsonBytes?: number;
}

export interface GcResult {
  /** Unreferenced blobs removed (or, with dryRun, that would be). */
  removedBlobs: Digest[];
  freedBytes: number;
  /** Referenced blobs that are not in the store (e.g. other platforms of a pulled index). */
  missing: Digest[];
  /** Referenced manifests/indexes that could not be read or parsed; their children may have been swept. */
  unreadable: Digest[];
  /** Partial writes and leases of dead processes, and stale lock files, removed. */
  removedIngest: number;
  removedLeases: number;
  removedLocks: number;
}

const DEFAULT_MAX_JSON = 4 * 1024 * 1024;

export interface MarkResult {
  reachable: Set<string>;
  missing: Digest[];
  unreadable: Digest[];
}

/** The children a manifest or index names, from its parsed JSON; unknown shapes name none. */
function childrenOf(doc: unknown, indexLike: boolean): Descriptor[] {
  if (typeof doc !== 'object' || doc === null) return [];
  const o = doc as Record<string, unknown>;
  const out: unknown[] = [];
  if (indexLike) {
    if (Array.isArray(o.manifests)) out.push(...(o.manifests as unknown[]));
  } else {
    out.push(o.config);
    if (Array.isArray(o.layers)) out.push(...(o.layers as unknown[]));
  }
  return out.filter((d): d is Descriptor => typeof d === 'object' && d !== null && isDigest((d as Descriptor).digest));
}

/**
 * Everything reachable from `roots`: the roots themselves, indexes → their
 * manifests, manifests → config and layers. Missing blobs are tolerated (an
 * index pulled for one platform names manifests we never fetched).
 */
export async function markReachable(store: ContentStore, roots: Descriptor[], maxJsonBytes = DEFAULT_MAX_JSON): Promise<MarkResult> {
  const reachable = new Set<string>();
  const missing: Digest[] = [];
  const unreadable: Digest[] = [];
  const queue = roots.filter((d) => typeof d === 'object' && d !== null && isDigest(d.digest));
  for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
    if (reachable.has(d.digest)) continue;
    reachable.add(d.digest);
    const indexLike = isIndexType(d.mediaType);
    const present = await stat(store.blobPath(d.digest)).then(
      () => true,
      (e: unknown) => {
        if (sysCode(e) === 'ENOENT') return false;
        throw e;
      },
    );
    if (!present) {
      missing.push(d.digest);
      continue;
    }
    if (!indexLike && !isManifestType(d.mediaType)) continue;
    try {
      const doc = JSON.parse((await store.readBlob(d, maxJsonBytes)).toString('utf8')) as unknown;
      queue.push(...childrenOf(doc, indexLike));
    } catch (e) {
      if (!(isS2nError(e) || e instanceof SyntaxError)) throw e;
      unreadable.push(d.digest);
    }
  }
  return { reachable, missing, unreadable };
}

async function removeFile(path: string, dryRun: boolean): Promise<boolean> {
  if (dryRun) return true;
  try {
    await unlink(path);
    return true;
  } catch (e) {
    if (sysCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** See the file comment. Never call it inside `store.withLease`: it would wait for itself. */
export async function gc(store: ContentStore, opts: GcOptions = {}): Promise<GcResult> {
  const dryRun = opts.dryRun === true;
  const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
  const signal = opts.signal ? { signal: opts.signal } : {};
  return withLock(
    store.gcLockPath,
    async () => {
      const removedLeases = await waitForLeases(store.leasesDir, {
        timeoutMs,
        removeDead: !dryRun,
        ...signal,
        onWait: (live) =>
          opts.onWait?.(`waiting for ${live.length} running pull(s) to finish (pid ${[...new Set(live.map((l) => l.pid))].join(', ')})`, live),
      });
      const result = await withLock(store.indexLockPath, () => markAndSweep(store, dryRun, opts.maxJsonBytes ?? DEFAULT_MAX_JSON), {
        what: 'the store index',
        timeoutMs,
        ...signal,
      });
      // Pid liveness, not a lock, protects a live writer's ingest file (a put may run outside a lease).
      const removedIngest = await cleanIngest(store.ingestDir, dryRun);
      const removedLocks = dryRun ? 0 : await cleanLockDir(store.locksDir);
      return { ...result, removedIngest, removedLeases, removedLocks };
    },
    { what: 'the store for garbage collection', timeoutMs, ...signal },
  );
}

async function markAndSweep(
  store: ContentStore,
  dryRun: boolean,
  maxJsonBytes: number,
): Promise<Pick<GcResult, 'removedBlobs' | 'freedBytes' | 'missing' | 'unreadable'>> {
  // Without index.json every blob would look unreferenced: refuse rather than empty the store.
  if (!existsSync(store.indexPath)) {
    throw new S2nError('ESTORE', `collect garbage: ${store.indexPath} is missing`, {
      hint: 'index.json names every image; restore it before pruning, or remove the store directory to start over',
      context: { path: store.indexPath },
    });
  }
  const index = await store.readIndex();
  const { reachable, missing, unreadable } = await markReachable(store, index.manifests, maxJsonBytes);
  const removedBlobs: Digest[] = [];
  let freedBytes = 0;
  const blobsDir = join(store.root, 'blobs');
  for (const alg of await readdirOrEmpty(blobsDir)) {
    for (const hex of await readdirOrEmpty(join(blobsDir, alg))) {
      const digest = `${alg}:${hex}`;
      // Files that are not blobs by name are someone else's; the layout spec says to leave unknown files alone.
      if (!isDigest(digest) || reachable.has(digest)) continue;
      const path = join(blobsDir, alg, hex);
      const size = await stat(path).then(
        (s) => s.size,
        () => undefined,
      );
      if (size === undefined) continue;
      if (await removeFile(path, dryRun)) {
        removedBlobs.push(digest);
        freedBytes += size;
      }
    }
  }
  return { removedBlobs, freedBytes, missing, unreadable };
}

/** Partial writes (ingest/<pid>-<rand>) whose writer is dead; a live writer's file is never touched. */
async function cleanIngest(dir: string, dryRun: boolean): Promise<number> {
  let removed = 0;
  for (const name of await readdirOrEmpty(dir)) {
    const pid = pidOfPrivateName(name);
    if (pid === undefined || isPidAlive(pid)) continue;
    if (await removeFile(join(dir, name), dryRun)) removed++;
  }
  return removed;
}
