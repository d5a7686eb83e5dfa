import type { Command } from 'commander';
import { isS2nError } from '../errors.js';
import type { GcOptions, GcResult } from '../store/gc.js';
import type { ContentStore } from '../store/store.js';
import { action } from './context.js';
import { humanSize, info, result, warn, type Output } from './output.js';

/**
 * Runs the store's GC. With a zero timeout (rmi) a running pull makes it skip
 * instead of wait: the blobs stay until the next prune.
 */
export async function collectGarbage(store: ContentStore, out: Output, opts: GcOptions): Promise<GcResult | undefined> {
  try {
    return await store.gc({ ...opts, onWait: (message) => info(out, message) });
  } catch (e) {
    if (opts.timeoutMs === 0 && isS2nError(e) && e.code === 'ELOCKED') {
      warn(out, 'another s2n-oci process is using the store; unreferenced blobs stay until `s2n-oci prune`');
      return undefined;
    }
    throw e;
  }
}

/**
 * Removes the unpacked rootfs caches of `digests` (manifests no name points
 * at any more). One being built right now is left for the next prune.
 */
export async function removeRootfsCaches(store: ContentStore, out: Output, digests: readonly string[]): Promise<string[]> {
  if (digests.length === 0) return [];
  const { RootfsCache } = await import('../rootfs/cache.js');
  const { imagesInUse } = await import('../runtime/in-use.js');
  const cache = new RootfsCache(store);
  const inUse = await imagesInUse();
  const removed: string[] = [];
  for (const d of digests) {
    const user = inUse.get(d);
    if (user !== undefined) {
      warn(out, `the rootfs of ${d} stays while container ${user} uses it; \`s2n-oci prune\` removes it once that container is gone`);
      continue;
    }
    try {
      if ((await cache.remove(d)) > 0) removed.push(d);
    } catch (e) {
      if (!(isS2nError(e) && e.code === 'ELOCKED')) throw e;
      warn(out, `the rootfs of ${d} is being unpacked by another s2n-oci process; \`s2n-oci prune\` removes it later`);
    }
  }
  return removed;
}

export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('remove blobs no image refers to, and leftovers of interrupted pulls')
    .option('--dry-run', 'list what would be removed, remove nothing')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (ctx, flags: { dryRun?: boolean }) => {
        const store = await ctx.store();
        const r = await collectGarbage(store, ctx.out, { dryRun: flags.dryRun === true });
        if (!r) return;
        // Rootfs caches of manifests no name points at, and temp dirs of killed unpacks.
        const { RootfsCache } = await import('../rootfs/cache.js');
        // …except those of images a container still runs on.
        const { imagesInUse } = await import('../runtime/in-use.js');
        const keep = new Set([...(await store.list()).map((e) => e.descriptor.digest), ...(await imagesInUse()).keys()]);
        const rootfs = await new RootfsCache(store).prune(keep, { dryRun: flags.dryRun === true });
        // Writable roots (--read-only=false) of containers that no longer exist.
        const [{ pruneWritableRoots }, { openStateStore }, { detectIdPlan }] = await Promise.all([
          import('../rootfs/writable.js'),
          import('../runtime/state.js'),
          import('../userns/ids.js'),
        ]);
        const live = new Set((await (await openStateStore()).list()).map((c) => c.id));
        const removedWritable = await pruneWritableRoots(store, live, (await detectIdPlan()).plan, { dryRun: flags.dryRun === true });
        if (ctx.out.json) return result(ctx.out, JSON.stringify({ ...r, removedRootfs: rootfs.removed, removedRootfsTemp: rootfs.removedTemp, removedWritableRoots: removedWritable }));
        for (const id of removedWritable) result(ctx.out, `${flags.dryRun ? 'would remove' : 'removed'} the writable root of container ${id.slice(0, 12)}`);
        for (const d of rootfs.removed) result(ctx.out, `${flags.dryRun ? 'would remove' : 'removed'} rootfs of ${d}`);
        for (const d of r.removedBlobs) result(ctx.out, `${flags.dryRun ? 'would remove' : 'removed'} ${d}`);
        info(ctx.out, `${flags.dryRun ? 'would free' : 'freed'} ${humanSize(r.freedBytes)} in ${r.removedBlobs.length} blobs`);
        if (r.missing.length > 0) warn(ctx.out, `${r.missing.length} referenced blobs are missing from the store: ${r.missing.join(', ')}; pull the affected images again`);
      }),
    );
}
