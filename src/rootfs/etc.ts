/** The account files of a rootfs, which the runtime spec needs to resolve USER names. */
import { readFileSync } from 'node:fs';
import type { EtcFiles } from '../runtime-spec/user.js';
import { resolveInRoot } from '../unpack/resolve.js';

/** /etc/passwd and /etc/group, read through resolveInRoot so an image symlink cannot point outside the rootfs. */
export async function readEtcFiles(rootfs: string): Promise<EtcFiles> {
  const read = async (name: string): Promise<string | undefined> => {
    try {
      // Synchronous: two small files on every run (see runtime/state.ts).
      return readFileSync(await resolveInRoot(rootfs, name), 'utf8');
    } catch {
      return undefined;
    }
  };
  const [passwd, group] = await Promise.all([read('etc/passwd'), read('etc/group')]);
  return { ...(passwd !== undefined ? { passwd } : {}), ...(group !== undefined ? { group } : {}) };
}
