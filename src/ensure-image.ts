/**
 * An image for `run` and `scan`: taken from the store, pulled when the
 * `--pull` policy says so, as `podman run --pull` does.
 */
import { S2nError, isS2nError } from './errors.js';
import type { Platform } from './oci/types.js';
import type { PullOptions } from './pull.js';
import { findImage, type StoredImage } from './store/find.js';
import type { ContentStore } from './store/store.js';

export type PullPolicy = 'missing' | 'always' | 'never' | 'newer';

export function parsePullPolicy(text: string): PullPolicy {
  const p = text.toLowerCase();
  if (p === 'missing' || p === 'always' || p === 'never') return p;
  // podman's `newer` needs a registry round trip per run; without a local timestamp to compare it is `always`.
  if (p === 'newer') return 'always';
  throw new S2nError('EUSAGE', `--pull ${text}: unknown policy`, { hint: 'use --pull=missing (the default), --pull=always or --pull=never' });
}

export interface EnsureImageOptions {
  pull: PullPolicy;
  platform?: Platform;
  onEvent?: PullOptions['onEvent'];
  signal?: AbortSignal;
  /** Told once when a pull starts. */
  notice?: (line: string) => void;
}

/** Sizes and schemas, no re-hash: the store verified the image on the way in (see store/find.ts). */
const WARM_READ = { verify: false } as const;

export async function ensureImage(store: ContentStore, ref: string, o: EnsureImageOptions): Promise<StoredImage> {
  const pull = async (): Promise<StoredImage> => {
    o.notice?.(`pulling ${ref}`);
    // Imported here: the registry client (undici) costs ~70 ms to load, which a run of a stored image must not pay.
    const { pullImage } = await import('./pull.js');
    o.signal?.throwIfAborted();
    const r = await pullImage(store, ref, {
      ...(o.platform ? { platform: o.platform } : {}),
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    return findImage(store, r.name, WARM_READ);
  };
  if (o.pull === 'always') return pull();
  try {
    return await findImage(store, ref, WARM_READ);
  } catch (e) {
    if (!isS2nError(e) || (e.code !== 'ENOTFOUND' && e.code !== 'EIMAGE')) throw e;
    if (o.pull === 'never') {
      throw new S2nError('ENOTFOUND', `image ${ref} is not in the store and --pull=never was given`, {
        hint: `pull it first (s2n-oci pull ${ref}) or, on a host without network, load a saved archive (s2n-oci load -i FILE)`,
        context: { reference: ref },
        cause: e,
      });
    }
    return pull();
  }
}
