/**
 * One container from a prepared bundle to its exit status: the record is
 * written first (with our pid, so a killed s2n-oci leaves state that
 * cleanupStale recognises), then the runtime runs, then --rm removes
 * everything or the exit code is recorded.
 */
import { join } from 'node:path';
import { runContainer, type PtySpawn } from './run-container.js';
import { removeContainer, runtimeFor } from './containers.js';
import type { RuntimeInfo } from './find.js';
import { mark } from './timing.js';
import { processStart, type ContainerRecord, type StateStore } from './state.js';

export interface LaunchOptions {
  state: StateStore;
  runtime: RuntimeInfo;
  id: string;
  name: string;
  /** From state.prepare(id, name), with config.json (and the files it binds) written. */
  bundle: string;
  command: string[];
  image?: { ref?: string; digest?: string };
  stopSignal?: string;
  tty: boolean;
  interactive: boolean;
  detach: boolean;
  /** The private writable root, if any: recorded so that removing the container removes it too. */
  rootfsCopy?: ContainerRecord['rootfsCopy'];
  /** Remove state and bundle when the container ends (default: true in the foreground). */
  rm?: boolean;
  signals?: NodeJS.EventEmitter;
  stdin?: NodeJS.ReadableStream & { fd?: number; isTTY?: boolean };
  stdout?: NodeJS.WritableStream & { fd?: number; isTTY?: boolean; columns?: number; rows?: number };
  stderr?: NodeJS.WritableStream & { fd?: number; isTTY?: boolean };
  env?: NodeJS.ProcessEnv;
  notice?: (line: string) => void;
  onStarted?: (pid: number) => void;
  ptySpawn?: PtySpawn;
}

/** Runs the container; resolves with the status to exit with (rejects with S2nError whose exitStatusOf() is 125/126/127). */
export async function launchContainer(o: LaunchOptions): Promise<number> {
  const rm = o.rm ?? !o.detach;
  const dir = o.state.containerDir(o.id);
  const pidStart = processStart(process.pid);
  const record: ContainerRecord = {
    id: o.id,
    name: o.name,
    ...(o.image ? { image: o.image } : {}),
    created: new Date().toISOString(),
    command: o.command,
    ...(o.stopSignal ? { stopSignal: o.stopSignal } : {}),
    pid: process.pid,
    ...(pidStart !== undefined ? { pidStart } : {}),
    bundle: o.bundle,
    runtime: o.runtime.name,
    runtimePath: o.runtime.path,
    rm,
    detached: o.detach,
    ...(o.detach ? { logPath: o.state.logPath(o.id) } : {}),
    ...(o.rootfsCopy ? { rootfsCopy: o.rootfsCopy } : {}),
  };
  await o.state.write(record);
  mark('record written');
  const runtime = runtimeFor(o.state, record);
  let removed = false;
  const cleanup = async (): Promise<void> => {
    if (o.detach) return;
    mark('runtime exited');
    if (rm) {
      await removeContainer(o.state, record, { force: true }).catch(() => undefined);
      removed = true;
    }
    mark('removed');
  };
  try {
    const status = await runContainer({
      runtime,
      id: o.id,
      bundle: o.bundle,
      tty: o.tty,
      interactive: o.interactive,
      detach: o.detach,
      runtimeLog: join(dir, 'runtime.log'),
      pidFile: join(dir, 'pid'),
      logPath: o.state.logPath(o.id),
      exitPath: o.state.exitPath(o.id),
      ...(o.detach && rm ? { removeDir: dir } : {}),
      ...(o.command[0] !== undefined ? { argv0: o.command[0] } : {}),
      ...(o.signals ? { signals: o.signals } : {}),
      ...(o.stdin ? { stdin: o.stdin } : {}),
      ...(o.stdout ? { stdout: o.stdout } : {}),
      ...(o.stderr ? { stderr: o.stderr } : {}),
      ...(o.env ? { env: o.env } : {}),
      ...(o.notice ? { notice: o.notice } : {}),
      ...(o.ptySpawn ? { ptySpawn: o.ptySpawn } : {}),
      onStarted: (pid) => {
        mark('container started');
        if (o.detach) {
          // The reaper watches the container from now on.
          record.pid = pid;
          const st = processStart(pid);
          if (st !== undefined) record.pidStart = st;
          else delete record.pidStart;
        }
        o.onStarted?.(pid);
      },
      cleanup,
    });
    if (!o.detach && !removed) {
      record.exitCode = status;
      record.finished = new Date().toISOString();
      await o.state.write(record);
    }
    // With --rm a container that is already over may have taken its directory with it.
    if (o.detach) await o.state.write(record).catch((e: unknown) => (rm ? undefined : Promise.reject(e)));
    return status;
  } catch (e) {
    // A container that never ran leaves nothing behind, --rm or not.
    if (o.detach || !removed) await removeContainer(o.state, record, { force: true }).catch(() => undefined);
    throw e;
  }
}
