/**
 * A private, writable copy of a cached rootfs, for `--read-only=false` and
 * the dev profile. The cache itself is shared by every container of an image
 * and must never be written. `cp -a` keeps modes, links, times and (inside
 * the user namespace the rootfs was built in) subuid ownership; on
 * filesystems that support it, --reflink shares the data blocks.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { S2nError } from '../errors.js';
import { readdirOrEmpty } from '../store/fsutil.js';
import type { ContentStore } from '../store/store.js';
import { removeTree } from './remove.js';
import { runInUserNamespace } from '../userns/run-in-userns.js';
import type { IdPlan } from '../userns/types.js';

/** Where container `id`'s writable root lives: `<store>/rootfs/rw/<id>`. */
export function writableRootPath(store: ContentStore, id: string): string {
  return join(store.root, 'rootfs', 'rw', id);
}

/** Copies `src` to `dest` (whose parent is created) inside the plan's user namespace. */
export async function copyRootfs(src: string, dest: string, plan: IdPlan): Promise<string> {
  await mkdir(dirname(dest), { recursive: true });
  const r = await runInUserNamespace(plan, 'cp', ['-a', '--reflink=auto', '--', src, dest]);
  if (r.code !== 0) {
    throw new S2nError('ESTORE', `copy rootfs for a writable root: cp failed (${r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`})`, {
      hint: 'check free space where the container state lives, or run with a read-only root (the default)',
      context: { source: src, destination: dest },
    });
  }
  return dest;
}

/**
 * Writable roots whose container is gone: a detached `--rm` container's
 * reaper removes only its state directory, and a crash can leave a copy.
 * `live` holds the ids of containers that still have a record.
 */
export async function pruneWritableRoots(store: ContentStore, live: ReadonlySet<string>, plan: IdPlan, o: { dryRun?: boolean } = {}): Promise<string[]> {
  const dir = join(store.root, 'rootfs', 'rw');
  const gone = (await readdirOrEmpty(dir)).filter((id) => !live.has(id));
  if (!o.dryRun) for (const id of gone) await removeTree(join(dir, id), plan.mode, plan);
  return gone;
}
