/**
 * Mount points every container needs, added to a freshly unpacked rootfs
 * before it is published to the cache. The runtime would otherwise create
 * missing ones itself at run time, inside the shared cache, and with the
 * wrong mode: runc 1.1 gives a tmpfs the mode of the directory it covers, so
 * a missing /tmp would become a 0755 tmpfs that only root can write.
 */
import { chmod, lstat, mkdir, writeFile } from 'node:fs/promises';
import { resolveInRoot } from '../unpack/resolve.js';

const DIRS: ReadonlyArray<readonly [string, number]> = [
  ['proc', 0o555],
  ['sys', 0o555],
  ['dev', 0o755],
  ['etc', 0o755],
  ['run', 0o755],
  ['tmp', 0o1777],
  ['var', 0o755],
  ['var/tmp', 0o1777],
];

const FILES: readonly string[] = ['etc/hosts', 'etc/resolv.conf', 'etc/hostname'];

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** Adds what is missing; never changes what the image has (a layer's own /tmp keeps its mode). */
export async function addMountPoints(rootfs: string): Promise<void> {
  for (const [name, mode] of DIRS) {
    const p = await resolveInRoot(rootfs, name);
    if (await exists(p)) continue;
    await mkdir(p, { mode });
    // mkdir applies the umask; the sticky, world-writable bits must be exact.
    await chmod(p, mode);
  }
  for (const name of FILES) {
    const p = await resolveInRoot(rootfs, name);
    if (!(await exists(p))) await writeFile(p, '', { mode: 0o644 });
  }
}
