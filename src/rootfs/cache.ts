/**
 * The rootfs cache: one unpacked tree per (manifest digest, ownership mode),
 * shared read-only by every container of that image, so a warm `run` copies
 * nothing. Layout under the store root:
 *
 *   rootfs/<mode>/<hex>/rootfs            the tree
 *   rootfs/<mode>/<hex>/s2n-rootfs.json   marker: {manifest, mode, uidMappings, gidMappings, createdAt}
 *   rootfs/<mode>/.tmp-<pid>-<rand>/      a build in progress (or left by a killed one)
 *
 * A build happens in a temp dir, the marker is written last and the dir is
 * renamed into place, so `<hex>` exists only when complete. A per-image lock
 * (locks/rootfs-<mode>-<hex>.lock) makes concurrent callers build it once;
 * temp dirs of dead builders are removed on the next build or prune. The
 * build holds a store lease so GC cannot sweep the layers it is reading.
 *
 * The unpacker (tar-stream, decompressors) is imported only for a build: a
 * warm `run` should not pay tens of ms to load it.
 */
import { readFileSync } from 'node:fs';
import { lstat, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { S2nError, isS2nError, sysCode } from '../errors.js';
import { parseDigest } from '../oci/digest.js';
import type { StoredImage } from '../store/find.js';
import { fsyncDir, isPidAlive, pidOfPrivateName, privateName, readdirOrEmpty } from '../store/fsutil.js';
import { withLock } from '../store/lock.js';
import type { ContentStore } from '../store/store.js';
import type { UnpackWarning } from '../unpack/apply.js';
import { sameMappings } from '../userns/ids.js';
import type { IdMapping, IdPlan, OwnershipMode } from '../userns/types.js';
import type { UnpackProgress } from './build.js';
import { addMountPoints } from './mountpoints.js';
import { removeTree } from './remove.js';

export const MARKER = 's2n-rootfs.json';
const MODES: readonly OwnershipMode[] = ['root', 'subid', 'single'];
const TMP_PREFIX = '.tmp-';
/** A cold unpack of a big image can take minutes; waiters should not give up first. */
const BUILD_LOCK_TIMEOUT_MS = 60 * 60_000;

export interface RootfsMarker {
  manifest: string;
  mode: OwnershipMode;
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
  createdAt: string;
}

export interface EnsureOptions {
  plan: IdPlan;
  onWarning?: (w: UnpackWarning) => void;
  /** Called per layer during a cold build; never on a warm hit. */
  onProgress?: (p: UnpackProgress) => void;
}

export interface EnsureResult {
  /** The rootfs directory (read-only by convention: share it, do not write into it). */
  path: string;
  plan: IdPlan;
  /** False when it was already cached. */
  built: boolean;
}

export interface PruneResult {
  /** Manifest digests whose caches were removed (once per mode). */
  removed: string[];
  /** Temp dirs of dead builds removed. */
  removedTemp: number;
}

export class RootfsCache {
  readonly dir: string;
  private readonly locksDir: string;

  constructor(private readonly store: ContentStore) {
    this.dir = join(store.root, 'rootfs');
    this.locksDir = store.locksDir;
  }

  /** `rootfs/<mode>/<hex>`, the entry for a manifest digest. */
  entryDir(manifestDigest: string, mode: OwnershipMode): string {
    return join(this.dir, mode, parseDigest(manifestDigest).hex);
  }

  private lockPath(manifestDigest: string, mode: OwnershipMode): string {
    return join(this.locksDir, `rootfs-${mode}-${parseDigest(manifestDigest).hex}.lock`);
  }

  /** The marker when the entry is complete and built for the same mappings as `plan`. */
  private async valid(manifestDigest: string, plan: IdPlan): Promise<boolean> {
    let m: RootfsMarker;
    try {
      // Synchronous: read on every run (see runtime/state.ts).
      m = JSON.parse(readFileSync(join(this.entryDir(manifestDigest, plan.mode), MARKER), 'utf8')) as RootfsMarker;
    } catch (e) {
      if (sysCode(e) === 'ENOENT' || e instanceof SyntaxError) return false;
      throw e;
    }
    return m.manifest === manifestDigest && m.mode === plan.mode && sameMappings(m.uidMappings, plan.uidMappings) && sameMappings(m.gidMappings, plan.gidMappings);
  }

  /** The marker of a cached entry, if complete. */
  async marker(manifestDigest: string, mode: OwnershipMode): Promise<RootfsMarker | undefined> {
    try {
      return JSON.parse(await readFile(join(this.entryDir(manifestDigest, mode), MARKER), 'utf8')) as RootfsMarker;
    } catch {
      return undefined;
    }
  }

  /**
   * The rootfs of `image` (an image of this cache's store) for `opts.plan`,
   * built on first use. Warm: one marker read, no lock.
   */
  async ensure(image: StoredImage, opts: EnsureOptions): Promise<EnsureResult> {
    const digest = image.manifestDesc.digest;
    const entry = this.entryDir(digest, opts.plan.mode);
    const result = (built: boolean): EnsureResult => ({ path: join(entry, 'rootfs'), plan: opts.plan, built });
    if (await this.valid(digest, opts.plan)) return result(false);
    const modeDir = join(this.dir, opts.plan.mode);
    await mkdir(modeDir, { recursive: true });
    return this.store.withLease(() =>
      withLock(
        this.lockPath(digest, opts.plan.mode),
        async () => {
          // Someone else may have built it while we waited for the lock.
          if (await this.valid(digest, opts.plan)) return result(false);
          await this.cleanTemps(opts.plan.mode, opts.plan);
          // An entry built for other mappings (the subuid range changed) or damaged: rebuild.
          if (await exists(entry)) await removeTree(entry, opts.plan.mode, opts.plan);
          await this.build(image, entry, modeDir, opts);
          return result(true);
        },
        { timeoutMs: BUILD_LOCK_TIMEOUT_MS, what: `the rootfs of ${image.names[0] ?? digest}` },
      ),
    );
  }

  private async build(image: StoredImage, entry: string, modeDir: string, opts: EnsureOptions): Promise<void> {
    for (const l of image.manifest.layers) {
      if (!(await this.store.has(l))) {
        throw new S2nError('ESTORE', `unpack ${image.names[0] ?? image.manifestDesc.digest}: layer ${l.digest} is missing from the store`, {
          hint: 'pull the image again',
          context: { layer: l.digest, manifest: image.manifestDesc.digest },
        });
      }
    }
    const tmp = join(modeDir, `${TMP_PREFIX}${privateName()}`);
    await mkdir(join(tmp, 'rootfs'), { recursive: true });
    try {
      const { unpackStoredImage } = await import('./build.js');
      await unpackStoredImage(this.store, image, join(tmp, 'rootfs'), opts);
      await addMountPoints(join(tmp, 'rootfs'));
      const marker: RootfsMarker = {
        manifest: image.manifestDesc.digest,
        mode: opts.plan.mode,
        uidMappings: opts.plan.uidMappings,
        gidMappings: opts.plan.gidMappings,
        createdAt: new Date().toISOString(),
      };
      await writeFile(join(tmp, MARKER), `${JSON.stringify(marker)}\n`);
      await rename(tmp, entry);
      await fsyncDir(modeDir);
    } catch (e) {
      await removeTree(tmp, opts.plan.mode, opts.plan).catch(() => {});
      throw e;
    }
  }

  /** Temp dirs whose builder is dead, in one mode dir. */
  private async deadTemps(mode: OwnershipMode): Promise<string[]> {
    return (await readdirOrEmpty(join(this.dir, mode))).filter((name) => {
      if (!name.startsWith(TMP_PREFIX)) return false;
      const pid = pidOfPrivateName(name.slice(TMP_PREFIX.length));
      return pid === undefined || !isPidAlive(pid);
    });
  }

  private async cleanTemps(mode: OwnershipMode, plan?: IdPlan): Promise<number> {
    const dead = await this.deadTemps(mode);
    for (const name of dead) await removeTree(join(this.dir, mode, name), mode, plan);
    return dead.length;
  }

  /** Removes every cached rootfs of `manifestDigest` (all modes); returns how many. */
  async remove(manifestDigest: string, opts: { plan?: IdPlan } = {}): Promise<number> {
    let n = 0;
    for (const mode of MODES) {
      const entry = this.entryDir(manifestDigest, mode);
      if (!(await exists(entry))) continue;
      await withLock(this.lockPath(manifestDigest, mode), () => removeTree(entry, mode, opts.plan), { timeoutMs: 0, what: `the rootfs of ${manifestDigest}` });
      n++;
    }
    return n;
  }

  /**
   * Removes the caches of manifests not in `keep`, and temp dirs of dead
   * builds. An entry being built right now (its lock is held) is skipped.
   */
  async prune(keep: ReadonlySet<string>, opts: { plan?: IdPlan; dryRun?: boolean } = {}): Promise<PruneResult> {
    const removed = new Set<string>();
    let removedTemp = 0;
    for (const mode of MODES) {
      if (opts.dryRun) removedTemp += (await this.deadTemps(mode)).length;
      else removedTemp += await this.cleanTemps(mode, opts.plan);
      for (const name of await readdirOrEmpty(join(this.dir, mode))) {
        const digest = `sha256:${name}`;
        if (!/^[0-9a-f]{64}$/.test(name) || keep.has(digest)) continue;
        if (!opts.dryRun) {
          try {
            await withLock(this.lockPath(digest, mode), () => removeTree(join(this.dir, mode, name), mode, opts.plan), { timeoutMs: 0, what: `the rootfs of ${digest}` });
          } catch (e) {
            if (isS2nError(e) && e.code === 'ELOCKED') continue;
            throw e;
          }
        }
        removed.add(digest);
      }
    }
    return { removed: [...removed], removedTemp };
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if (sysCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** `new RootfsCache(store).ensure(image, opts)`: the one call `run` needs. */
export function ensureRootfs(store: ContentStore, image: StoredImage, opts: EnsureOptions): Promise<EnsureResult> {
  return new RootfsCache(store).ensure(image, opts);
}
