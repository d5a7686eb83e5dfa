/**
 * Which images this user's containers are built on, so that `rmi` and
 * `prune` never remove a rootfs out from under a container. A record counts
 * while its watcher (the foreground s2n-oci or the detached reaper) lives or
 * the runtime still has state for it.
 */
import { runtimeFor } from './containers.js';
import { openStateStore, watcherAlive } from './state.js';

/** Manifest digest → the name of one container using it. */
export async function imagesInUse(env: NodeJS.ProcessEnv = process.env): Promise<Map<string, string>> {
  const state = await openStateStore({ env });
  const inUse = new Map<string, string>();
  for (const r of await state.list()) {
    const digest = r.image?.digest;
    if (digest === undefined || inUse.has(digest)) continue;
    if (watcherAlive(r) || runtimeFor(state, r).hasState(r.id)) inUse.set(digest, r.name);
  }
  return inUse;
}
