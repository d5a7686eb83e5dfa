/**
 * Temp dirs and last-resort cleanup shared by all helpers. Anything a helper
 * starts or creates is registered here so that a crashed or aborted test run
 * does not leave registries or temp dirs behind. No vitest import here, so
 * benchmarks can use the image and registry helpers outside the runner.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const exitDirs = new Set<string>();
const exitPids = new Set<number>();
let hooked = false;

function cleanupSync(): void {
  for (const pid of exitPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  exitPids.clear();
  for (const d of exitDirs) rmSync(d, { recursive: true, force: true });
  exitDirs.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  // 'exit' handlers must be synchronous: kill and rm without awaiting.
  process.once('exit', cleanupSync);
  // A signal skips 'exit'. Clean up, then, if nobody else handles the signal,
  // re-raise it so the default action (death) still happens.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupSync();
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/** Kill `pid` with SIGKILL if the test process exits while it still runs. */
export function killOnExit(pid: number): () => void {
  hookExit();
  exitPids.add(pid);
  return () => exitPids.delete(pid);
}

/** Remove `dir` if the test process exits before it was removed. */
export function removeOnExit(dir: string): () => void {
  hookExit();
  exitDirs.add(dir);
  return () => exitDirs.delete(dir);
}

/** A fresh dir under the OS temp dir, removed at process exit at the latest. */
export async function makeTempDir(prefix = 's2n-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  removeOnExit(dir);
  return dir;
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  exitDirs.delete(dir);
}

/** Runs `fn` with a temp dir that is removed afterwards, whatever happens. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T> | T, prefix = 's2n-test-'): Promise<T> {
  const dir = await makeTempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await removeDir(dir);
  }
}
