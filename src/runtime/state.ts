/**
 * Container records and the state root. Layout under the state root:
 *   containers/<id>/record.json   what `ps`, `logs`, `rm` need
 *   containers/<id>/bundle/       config.json plus the files it binds
 *   containers/<id>/ctr.log       stdout+stderr of a detached container
 *   containers/<id>/exit          the exit status, written by the detached reaper
 *   runtime/<runc|crun>/          the runtime's own --root
 * Rootless runc wants its --root under XDG_RUNTIME_DIR, and so does everything
 * here: it is per-boot state, gone after a reboot like the containers.
 */
// Synchronous: a few small files per run, and a run's start-up is the time users see (an async
// fs call costs ~0.1-0.4 ms of thread-pool round trips, the sync one ~10-20 µs).
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { S2nError, sysCode } from '../errors.js';
import { randomBytes } from '../lazy-crypto.js';
import type { OwnershipMode } from '../userns/types.js';
import type { RuntimeName } from './find.js';

export interface StateRootChoice {
  dir: string;
  /** Set when we fell back to /tmp. */
  warning?: string;
}

/** $S2N_OCI_STATE, else /run/s2n-oci as root, else $XDG_RUNTIME_DIR/s2n-oci, else /tmp/s2n-oci-<uid>. */
export function defaultStateRoot(env: NodeJS.ProcessEnv = process.env, uid: number = process.geteuid?.() ?? 0): StateRootChoice {
  if (env.S2N_OCI_STATE && isAbsolute(env.S2N_OCI_STATE)) return { dir: env.S2N_OCI_STATE };
  if (uid === 0) return { dir: '/run/s2n-oci' };
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && isAbsolute(xdg)) return { dir: join(xdg, 's2n-oci') };
  const dir = join(tmpdir(), `s2n-oci-${uid}`);
  return {
    dir,
    warning: `XDG_RUNTIME_DIR is not set: keeping container state in ${dir} (log in through a session, or export XDG_RUNTIME_DIR=/run/user/${uid})`,
  };
}

export interface ContainerRecord {
  id: string;
  name: string;
  image?: { ref?: string; digest?: string };
  /** ISO 8601. */
  created: string;
  command: string[];
  /** The image's StopSignal ("SIGTERM" when unset), for `stop`. */
  stopSignal?: string;
  /** The process that watches the container: s2n-oci itself (foreground) or the detached reaper. */
  pid: number;
  /** Its start time in clock ticks (/proc/PID/stat field 22), so a reused pid is not taken for it. */
  pidStart?: number;
  bundle: string;
  runtime: RuntimeName;
  runtimePath: string;
  rm: boolean;
  detached: boolean;
  /** A private writable root (--read-only=false): a copy in the store, removed with the container. */
  rootfsCopy?: { path: string; mode: OwnershipMode };
  logPath?: string;
  exitCode?: number;
  /** ISO 8601, when the exit was seen. */
  finished?: string;
}

/** Start time of a process (clock ticks since boot), or undefined when it is gone. */
export function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** True when the record's watcher process still runs (same pid, same start time). */
export function watcherAlive(r: Pick<ContainerRecord, 'pid' | 'pidStart'>): boolean {
  const st = processStart(r.pid);
  return st !== undefined && (r.pidStart === undefined || r.pidStart === st);
}

export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export class StateStore {
  constructor(readonly root: string) {}

  static async open(root: string): Promise<StateStore> {
    mkdirSync(join(root, 'containers'), { recursive: true, mode: 0o700 });
    return new StateStore(root);
  }

  /** The runtime's --root. */
  runtimeRoot(name: RuntimeName): string {
    return join(this.root, 'runtime', name);
  }

  containerDir(id: string): string {
    return join(this.root, 'containers', id);
  }

  bundleDir(id: string): string {
    return join(this.containerDir(id), 'bundle');
  }

  logPath(id: string): string {
    return join(this.containerDir(id), 'ctr.log');
  }

  exitPath(id: string): string {
    return join(this.containerDir(id), 'exit');
  }

  /** Creates containers/<id>/bundle and checks the name is free. */
  async prepare(id: string, name: string): Promise<string> {
    if (!NAME_RE.test(name)) {
      throw new S2nError('EUSAGE', `name container "${name}": invalid name`, {
        hint: 'use letters, digits, "_", "." and "-", starting with a letter or digit',
      });
    }
    const clash = (await this.list()).find((r) => r.name === name);
    if (clash !== undefined) {
      throw new S2nError('EUSAGE', `name container "${name}": the name is already in use by ${clash.id.slice(0, 12)}`, {
        hint: `remove it first (s2n-oci rm -f ${name}) or choose another --name`,
      });
    }
    const b = this.bundleDir(id);
    mkdirSync(b, { recursive: true, mode: 0o700 });
    return b;
  }

  async write(r: ContainerRecord): Promise<void> {
    const f = join(this.containerDir(r.id), 'record.json');
    const tmp = `${f}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(r, null, 2)}\n`);
    renameSync(tmp, f);
  }

  async read(id: string): Promise<ContainerRecord | undefined> {
    try {
      const r = JSON.parse(readFileSync(join(this.containerDir(id), 'record.json'), 'utf8')) as ContainerRecord;
      if (r.exitCode === undefined) {
        const code = await readExit(this.exitPath(id));
        if (code !== undefined) r.exitCode = code;
      }
      return r;
    } catch (e) {
      if (sysCode(e) === 'ENOENT' || e instanceof SyntaxError) return undefined;
      throw e;
    }
  }

  async list(): Promise<ContainerRecord[]> {
    let ids: string[];
    try {
      ids = readdirSync(join(this.root, 'containers'));
    } catch (e) {
      if (sysCode(e) === 'ENOENT') return [];
      throw e;
    }
    const out: ContainerRecord[] = [];
    for (const id of ids) {
      const r = await this.read(id);
      if (r !== undefined) out.push(r);
    }
    return out.sort((a, b) => b.created.localeCompare(a.created));
  }

  /** By full id, unique id prefix, or name. */
  async find(idOrName: string): Promise<ContainerRecord> {
    const all = await this.list();
    const byName = all.find((r) => r.name === idOrName);
    if (byName) return byName;
    const byId = all.filter((r) => r.id.startsWith(idOrName));
    if (byId.length === 1) return byId[0]!;
    throw new S2nError('ENOTFOUND', `find container ${idOrName}: ${byId.length > 1 ? 'the prefix matches several containers' : 'no such container'}`, {
      hint: byId.length > 1 ? 'give more characters of the id' : 'list containers with s2n-oci ps -a',
      context: { container: idOrName },
    });
  }

  /** Removes the record, bundle and log (a writable root lives in the store: see removeContainer). */
  async remove(id: string): Promise<void> {
    // Whole synchronous passes (fast on a run's exit path), repeated when a detached container's
    // reaper writes its exit file meanwhile: rmSync's own retries only retry the last rmdir.
    for (let attempt = 1; ; attempt++) {
      try {
        rmSync(this.containerDir(id), { recursive: true, force: true });
        return;
      } catch (e) {
        if (sysCode(e) !== 'ENOTEMPTY' || attempt >= 5) throw e;
        await new Promise((res) => setTimeout(res, attempt * 50));
      }
    }
  }
}

async function readExit(p: string): Promise<number | undefined> {
  try {
    const t = readFileSync(p, 'utf8').trim();
    return t === '' ? undefined : Number(t);
  } catch {
    return undefined;
  }
}

/** The default state store, opened; `warn` gets the /tmp fallback warning. */
export async function openStateStore(o: { env?: NodeJS.ProcessEnv; uid?: number; warn?: (line: string) => void } = {}): Promise<StateStore> {
  const choice = defaultStateRoot(o.env, o.uid);
  if (choice.warning) o.warn?.(choice.warning);
  return StateStore.open(choice.dir);
}
