import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/**
 * Where the store lives when --root is not given: $S2N_OCI_ROOT, else
 * /var/lib/s2n-oci for root, else $XDG_DATA_HOME/s2n-oci or
 * ~/.local/share/s2n-oci. A relative XDG_DATA_HOME is ignored, as the XDG
 * base-directory spec requires. The world is passed in so tests need no env.
 */
export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env, euid: number | undefined = process.geteuid?.()): string {
  const explicit = env.S2N_OCI_ROOT;
  if (explicit) return explicit;
  if (euid === 0) return '/var/lib/s2n-oci';
  const xdg = env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 's2n-oci');
  return join(env.HOME || homedir(), '.local', 'share', 's2n-oci');
}
