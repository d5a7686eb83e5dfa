/**
 * A private, writable copy of a cached rootfs, for `--read-only=false` and
 * the dev profile. The cache itself is shared by every container of an image
 * and must never be written. `cp -a` keeps modes, links, times and (inside
 * the user namespace the rootfs was built in) subuid ownership; on
 * filesystems that support it, --reflink shares the data blocks.
 */
import { S2nError } from '../errors.js';
import { runInUserNamespace } from '../userns/run-in-userns.js';
import type { IdPlan } from '../userns/types.js';

export async function copyRootfs(src: string, dest: string, plan: IdPlan): Promise<string> {
  const r = await runInUserNamespace(plan, 'cp', ['-a', '--reflink=auto', '--', src, dest]);
  if (r.code !== 0) {
    throw new S2nError('ESTORE', `copy rootfs for a writable root: cp failed (${r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`})`, {
      hint: 'check free space where the container state lives, or run with a read-only root (the default)',
      context: { source: src, destination: dest },
    });
  }
  return dest;
}
