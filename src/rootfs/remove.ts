/**
 * Removing an unpacked rootfs. Root removes anything. A user cannot unlink
 * files inside directories owned by its subuids, so a 'subid' tree is removed
 * by `rm -rf` inside the same user namespace it was built in. A 'single' tree
 * belongs to the user, but directories may be read-only (0555): on EACCES the
 * directories are made writable and the removal retried.
 */
import { chmod, lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { S2nError, sysCode } from '../errors.js';
import { detectIdPlan } from '../userns/ids.js';
import { runInUserNamespace } from '../userns/run-in-userns.js';
import type { IdPlan, OwnershipMode } from '../userns/types.js';

async function makeWritable(dir: string): Promise<void> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return;
  await chmod(dir, (st.mode & 0o7777) | 0o700).catch(() => {});
  for (const n of await readdir(dir).catch(() => [] as string[])) await makeWritable(join(dir, n));
}

/** Removes `path` (built in ownership `mode`); `plan` is the current user's, detected when not given. */
export async function removeTree(path: string, mode: OwnershipMode, plan?: IdPlan): Promise<void> {
  const root = process.geteuid?.() === 0;
  if (!root && mode === 'subid') {
    const p = plan ?? (await detectIdPlan()).plan;
    if (p.mode !== 'subid') {
      throw new S2nError('EINTERNAL', `remove rootfs ${path}: it is owned by subordinate ids, and this user has no subordinate id range any more`, {
        hint: 'restore the range in /etc/subuid and /etc/subgid, or remove it as root',
        context: { path },
      });
    }
    const r = await runInUserNamespace(p, 'rm', ['-rf', '--', path]);
    if (r.code !== 0) {
      throw new S2nError('EINTERNAL', `remove rootfs ${path}: rm in the user namespace failed (${r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`})`, {
        hint: 'check that newuidmap/newgidmap work for this user, or remove the directory as root',
        context: { path, exitCode: r.code, signal: r.signal },
      });
    }
    return;
  }
  try {
    await rm(path, { recursive: true, force: true });
  } catch (e) {
    if (root || (sysCode(e) !== 'EACCES' && sysCode(e) !== 'EPERM')) throw e;
    await makeWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}
