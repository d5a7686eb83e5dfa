/**
 * Host facts the driver and the spec generator rely on: cgroup layout and
 * what this user may manage, whether user namespaces are allowed, newuidmap.
 * Reads only /proc and /sys; the paths are parameters so tests use fixtures.
 */
import { readFileSync } from 'node:fs';
import { access, constants, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { S2nError } from '../errors.js';
import type { CgroupVersion, HostFacts } from '../runtime-spec/host-facts.js';
import type { IdPlan } from '../userns/types.js';
import { which } from '../which.js';
import { findRuntime, locateRuntime, probeRuntime, type FindRuntimeOptions, type RuntimeInfo } from './find.js';

export interface CgroupFacts {
  version: CgroupVersion;
  /** Where the cgroup2 hierarchy is mounted (/sys/fs/cgroup, or …/unified on hybrid hosts). */
  unifiedMount?: string;
  /** This process' cgroup in the v2 hierarchy ("/user.slice/…"). */
  ownPath?: string;
  /** v1 controllers mounted (hybrid and v1 hosts). */
  v1Controllers: string[];
  canManage: boolean;
  controllers: string[];
  /** Rootless on v2: where container cgroups go (the parent of ownPath, delegated to this user). */
  parent?: string;
  /** Why limits cannot be set, with the fix, when canManage is false. */
  problem?: Problem;
}

export interface Problem {
  message: string;
  fix: string;
}

interface Mount {
  mountPoint: string;
  fsType: string;
  superOptions: string;
}

/** The mounts of /proc/self/mountinfo (fields: … mountpoint … - fstype source superopts). */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    const mountPoint = pre[4];
    const fsType = post[0];
    if (mountPoint === undefined || fsType === undefined) continue;
    out.push({ mountPoint: mountPoint.replace(/\\040/g, ' '), fsType, superOptions: post[2] ?? '' });
  }
  return out;
}

const V1_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'hugetlb', 'net_cls', 'net_prio', 'perf_event', 'rdma', 'misc'];

/** v1, v2 or hybrid, from the cgroup mounts. */
export function cgroupLayout(mounts: readonly Mount[]): { version: CgroupVersion; unifiedMount?: string; v1Controllers: string[] } {
  const v2 = mounts.filter((m) => m.fsType === 'cgroup2');
  const v1 = mounts.filter((m) => m.fsType === 'cgroup');
  const v1Controllers = [...new Set(v1.flatMap((m) => m.superOptions.split(',').filter((o) => V1_CONTROLLERS.includes(o))))].sort();
  const pure = v2.find((m) => m.mountPoint === '/sys/fs/cgroup');
  if (pure !== undefined && v1.length === 0) return { version: 2, unifiedMount: pure.mountPoint, v1Controllers };
  if (v1.length > 0 && v2.length > 0) return { version: 'hybrid', unifiedMount: v2[0]!.mountPoint, v1Controllers };
  if (v1.length > 0) return { version: 1, v1Controllers };
  return v2[0] ? { version: 2, unifiedMount: v2[0].mountPoint, v1Controllers } : { version: 1, v1Controllers };
}

/** The v2 path ("0::/x") of /proc/self/cgroup. */
export function ownCgroup2Path(procSelfCgroup: string): string | undefined {
  const m = /^0::(\S*)$/m.exec(procSelfCgroup);
  return m?.[1];
}

export interface HostPaths {
  mountinfo: string;
  selfCgroup: string;
  /** Prefix for /proc/sys and the cgroup mount points (fixtures). */
  fsRoot: string;
}

const REAL: HostPaths = { mountinfo: '/proc/self/mountinfo', selfCgroup: '/proc/self/cgroup', fsRoot: '/' };

async function readText(p: string): Promise<string | undefined> {
  try {
    // Synchronous: /proc files, read on every run (see runtime/state.ts).
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

async function writable(p: string): Promise<boolean> {
  try {
    await access(p, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export async function probeCgroup(uid: number, paths: HostPaths = REAL): Promise<CgroupFacts> {
  const layout = cgroupLayout(parseMountinfo((await readText(paths.mountinfo)) ?? ''));
  const ownPath = ownCgroup2Path((await readText(paths.selfCgroup)) ?? '');
  const base: CgroupFacts = { ...layout, ...(ownPath !== undefined ? { ownPath } : {}), canManage: false, controllers: [] };
  if (layout.version === 2 && layout.unifiedMount !== undefined && ownPath !== undefined) {
    // Rootless, the container's cgroup is made beside ours, not inside: cgroup v2 lets no cgroup that
    // holds a process (ours) hand controllers to children. So it is our parent that must be delegated
    // to us, as systemd does for everything under user@UID.service.
    const parent = uid === 0 ? ownPath : posix.dirname(ownPath);
    const dir = join(paths.fsRoot, layout.unifiedMount, parent);
    const controllers = ((await readText(join(dir, 'cgroup.controllers'))) ?? '').trim().split(/\s+/).filter(Boolean);
    const canWrite = uid === 0 || (parent !== ownPath && (await writable(dir)) && (await writable(join(dir, 'cgroup.subtree_control'))));
    base.controllers = controllers;
    base.canManage = canWrite && controllers.length > 0;
    if (base.canManage && uid !== 0) base.parent = parent;
    if (!base.canManage) {
      base.problem = {
        message: `cgroup ${parent} is not delegated to uid ${uid}: memory, CPU and pids limits cannot be enforced`,
        fix: 'run inside a delegated systemd scope: systemd-run --user --scope -p Delegate=yes s2n-oci run …',
      };
    }
    return base;
  }
  // v1 and hybrid: only root can create cgroups under the v1 controllers.
  base.controllers = layout.v1Controllers.filter((c) => ['cpu', 'memory', 'pids', 'cpuset', 'blkio'].includes(c));
  base.canManage = uid === 0 && base.controllers.length > 0;
  if (!base.canManage) {
    base.problem = {
      message: `cgroup ${layout.version === 1 ? 'v1' : 'v1+v2 hybrid'} host: resource limits need root`,
      fix: 'boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2) and use a delegated scope, or run as root',
    };
  }
  return base;
}

export interface UsernsFacts {
  allowed: boolean;
  maxUserNamespaces?: number;
  newuidmap?: string;
  newgidmap?: string;
  problems: Problem[];
}

export async function probeUserns(env: NodeJS.ProcessEnv = process.env, fsRoot = '/'): Promise<UsernsFacts> {
  const problems: Problem[] = [];
  const num = async (p: string): Promise<number | undefined> => {
    const t = await readText(join(fsRoot, p));
    return t === undefined ? undefined : Number(t.trim());
  };
  const max = await num('proc/sys/user/max_user_namespaces');
  const clone = await num('proc/sys/kernel/unprivileged_userns_clone');
  const apparmor = await num('proc/sys/kernel/apparmor_restrict_unprivileged_userns');
  let allowed = true;
  if (max === 0) {
    allowed = false;
    problems.push({ message: 'user namespaces are disabled (user.max_user_namespaces = 0)', fix: 'sudo sysctl -w user.max_user_namespaces=15000' });
  }
  if (clone === 0) {
    allowed = false;
    problems.push({
      message: 'unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)',
      fix: 'sudo sysctl -w kernel.unprivileged_userns_clone=1',
    });
  }
  if (apparmor === 1) {
    allowed = false;
    problems.push({
      message: 'AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)',
      fix: 'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or add an AppArmor profile allowing userns for crun/runc)',
    });
  }
  const newuidmap = which('newuidmap', env);
  const newgidmap = which('newgidmap', env);
  if (newuidmap === undefined || newgidmap === undefined) {
    problems.push({ message: 'newuidmap/newgidmap not found: only a single-id mapping is possible rootless', fix: 'sudo apt-get install uidmap' });
  } else {
    const st = await stat(newuidmap).catch(() => undefined);
    // setuid root, or file capabilities (Fedora): only the setuid case is visible here.
    if (st !== undefined && (st.mode & 0o4000) === 0 && st.uid === 0) {
      problems.push({
        message: `${newuidmap} is not setuid (it may still have file capabilities)`,
        fix: `getcap ${newuidmap} || sudo chmod u+s ${newuidmap} ${newgidmap}`,
      });
    }
  }
  return {
    allowed,
    ...(max !== undefined ? { maxUserNamespaces: max } : {}),
    ...(newuidmap ? { newuidmap } : {}),
    ...(newgidmap ? { newgidmap } : {}),
    problems,
  };
}

/**
 * Throws when `runtime` cannot work on this host. crun (1.8) refuses hybrid
 * cgroup hosts outright ("cgroups in hybrid mode not supported").
 */
export function checkRuntimeUsable(runtime: Pick<RuntimeInfo, 'name' | 'path'>, facts: { cgroup: { version: CgroupVersion } }): void {
  if (runtime.name === 'crun' && facts.cgroup.version === 'hybrid') {
    throw new S2nError('EUSAGE', `run with ${runtime.path}: crun does not support cgroup v1+v2 hybrid hosts (this host mounts both)`, {
      hint: 'use --runtime runc, or boot with systemd.unified_cgroup_hierarchy=1 to get cgroup v2 only',
      context: { runtime: runtime.path, cgroup: 'hybrid' },
    });
  }
}

export interface ChooseRuntimeOptions extends FindRuntimeOptions {
  cgroup: { version: CgroupVersion };
  /** Told about an automatic fallback, one line. */
  notice?: (line: string) => void;
}

/**
 * findRuntime, then checkRuntimeUsable; when the runtime was not chosen
 * explicitly and cannot work here, the other one is tried (with a notice).
 */
export async function chooseRuntime(o: ChooseRuntimeOptions): Promise<RuntimeInfo> {
  const rt = await locateRuntime(o);
  try {
    checkRuntimeUsable(rt, o);
  } catch (e) {
    if (rt.explicit) throw e;
    let other: RuntimeInfo;
    try {
      other = await findRuntime({ ...o, exclude: [...(o.exclude ?? []), rt.name], accept: (x) => checkRuntimeUsable(x, o) });
    } catch {
      throw e;
    }
    o.notice?.(`${rt.name} cannot run on this host (cgroup v1+v2 hybrid); using ${other.name} ${other.version} instead`);
    return other;
  }
  return probeRuntime(rt.path, rt.explicit, o);
}

/** HostFacts for the spec generator; `ids` comes from src/userns. */
export async function probeHost(runtime: RuntimeInfo, ids: IdPlan, cgroup?: CgroupFacts): Promise<HostFacts> {
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  const cg = cgroup ?? (await probeCgroup(uid));
  return {
    uid,
    gid,
    rootless: uid !== 0,
    cgroup: { version: cg.version, canManage: cg.canManage, controllers: cg.controllers, ...(cg.parent !== undefined ? { parent: cg.parent } : {}) },
    runtime: { name: runtime.name, version: runtime.version },
    ids,
  };
}
