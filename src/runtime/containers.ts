/**
 * Operations on recorded containers, shared by `run`, `ps`, `stop`, `kill`,
 * `rm`: their runtime, their live status, removal, and the clean-up of state
 * left behind by a foreground run whose s2n-oci was killed.
 */
import { S2nError } from '../errors.js';
import { removeTree } from '../rootfs/remove.js';
import { OciRuntime, type RuntimeState, type SpawnFn } from './oci-runtime.js';
import { type ContainerRecord, type StateStore, watcherAlive } from './state.js';

export function runtimeFor(state: StateStore, r: Pick<ContainerRecord, 'runtime' | 'runtimePath'>, spawn?: SpawnFn): OciRuntime {
  return new OciRuntime({ name: r.runtime, path: r.runtimePath }, state.runtimeRoot(r.runtime), spawn);
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'exited' | 'unknown';

export interface ContainerView {
  record: ContainerRecord;
  status: ContainerStatus;
  /** The container's init pid while it runs. */
  pid?: number;
}

/** The record plus what the runtime says about it now. */
export async function inspectContainer(state: StateStore, r: ContainerRecord): Promise<ContainerView> {
  let st: RuntimeState | undefined;
  const rt = runtimeFor(state, r);
  if (!rt.hasState(r.id)) return { record: r, status: 'exited' };
  try {
    st = await rt.state(r.id);
  } catch {
    return { record: r, status: 'unknown' };
  }
  if (st === undefined || st.status === 'stopped') return { record: r, status: 'exited' };
  const status: ContainerStatus = st.status === 'running' || st.status === 'created' || st.status === 'paused' ? st.status : 'unknown';
  return { record: r, status, ...(st.pid ? { pid: st.pid } : {}) };
}

/** Kills (when asked) and deletes the runtime's state, then the record, bundle and log. */
export async function removeContainer(state: StateStore, r: ContainerRecord, o: { force?: boolean } = {}): Promise<void> {
  const rt = runtimeFor(state, r);
  // The usual case after a foreground run is no runtime state: the runtime removed it itself.
  if (rt.hasState(r.id)) {
    const v = await inspectContainer(state, r);
    if ((v.status === 'running' || v.status === 'paused') && !o.force) {
      throw new S2nError('EUSAGE', `remove container ${r.name}: it is running`, {
        hint: `stop it first (s2n-oci stop ${r.name}) or use rm -f`,
        context: { container: r.id },
      });
    }
    if (v.status !== 'exited') {
      await rt.kill(r.id, 'SIGKILL').catch(() => undefined);
    }
    await rt.delete(r.id, { force: true }).catch(() => undefined);
  }
  if (r.rootfsCopy) await removeTree(r.rootfsCopy.path, r.rootfsCopy.mode);
  await state.remove(r.id);
}

/**
 * State left by a foreground run whose s2n-oci is gone (SIGKILL, crash): its
 * container is killed if it still runs (nobody reads its output any more),
 * its runtime state deleted and its directory removed. Detached containers
 * whose reaper is gone are removed only when they asked for --rm and stopped.
 * Returns the ids cleaned.
 */
export async function cleanupStale(state: StateStore): Promise<string[]> {
  const cleaned: string[] = [];
  for (const r of await state.list()) {
    if (watcherAlive(r)) continue;
    if (r.detached) {
      if (!r.rm) continue;
      const v = await inspectContainer(state, r);
      if (v.status !== 'exited') continue;
    }
    try {
      await removeContainer(state, r, { force: true });
      cleaned.push(r.id);
    } catch {
      /* try again next time */
    }
  }
  return cleaned;
}

/** Waits until the container is no longer running, up to `ms`. True when it stopped. */
export async function waitStopped(state: StateStore, r: ContainerRecord, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await inspectContainer(state, r);
    if (v.status === 'exited') return true;
    if (Date.now() >= deadline) return false;
    await new Promise((res) => setTimeout(res, Math.min(100, Math.max(10, deadline - Date.now()))));
  }
}

/** StopSignal, then SIGKILL after `timeoutSec`. Returns true when SIGKILL was needed. */
export async function stopContainer(state: StateStore, r: ContainerRecord, timeoutSec: number): Promise<boolean> {
  const rt = runtimeFor(state, r);
  if ((await inspectContainer(state, r)).status === 'exited') return false;
  await rt.kill(r.id, r.stopSignal ?? 'SIGTERM').catch(() => undefined);
  if (await waitStopped(state, r, timeoutSec * 1000)) return false;
  await rt.kill(r.id, 'SIGKILL').catch(() => undefined);
  await waitStopped(state, r, 10_000);
  return true;
}
