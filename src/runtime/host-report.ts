/**
 * Everything `s2n-oci info` shows: the facts the driver relies on, and each
 * problem with the command that fixes it.
 */
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { defaultStoreRoot } from '../store/root.js';
import { parseSubordinateIds, type SubordinateRange } from '../userns/ids.js';
import { findAllRuntimes, findRuntime, type RuntimeInfo } from './find.js';
import { checkRuntimeUsable, probeCgroup, probeUserns, type CgroupFacts, type Problem, type UsernsFacts } from './host.js';
import { defaultStateRoot } from './state.js';

export interface RuntimeReport extends RuntimeInfo {
  usable: boolean;
  problem?: Problem;
}

export interface HostReport {
  user: { name: string; uid: number; gid: number; rootless: boolean };
  runtimes: RuntimeReport[];
  /** The runtime `run` would use (after the automatic fallback), if any. */
  defaultRuntime?: string;
  userNamespaces: UsernsFacts;
  subuid: SubordinateRange[];
  subgid: SubordinateRange[];
  cgroup: CgroupFacts;
  store: string;
  state: string;
  problems: Problem[];
}

export async function hostReport(o: { env?: NodeJS.ProcessEnv; storeRoot?: string } = {}): Promise<HostReport> {
  const env = o.env ?? process.env;
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  let name = env.USER ?? String(uid);
  try {
    name = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  const cgroup = await probeCgroup(uid);
  const problems: Problem[] = [];
  const runtimes: RuntimeReport[] = (await findAllRuntimes(env)).map((rt) => {
    try {
      checkRuntimeUsable(rt, { cgroup });
      return { ...rt, usable: true };
    } catch (e) {
      const p = { message: (e as Error).message, fix: (e as { hint?: string }).hint ?? '' };
      return { ...rt, usable: false, problem: p };
    }
  });
  if (runtimes.length === 0) problems.push({ message: 'no OCI runtime (crun or runc) on PATH', fix: 'sudo apt-get install crun runc' });
  let defaultRuntime: string | undefined;
  try {
    const chosen = await findRuntime({ env });
    defaultRuntime = chosen.explicit ? chosen.name : runtimes.find((r) => r.usable)?.name;
  } catch (e) {
    problems.push({ message: (e as Error).message, fix: (e as { hint?: string }).hint ?? '' });
  }
  if (defaultRuntime === undefined && runtimes.length > 0) problems.push({ message: 'no runtime can run containers on this host', fix: runtimes[0]?.problem?.fix ?? '' });
  for (const r of runtimes) if (r.problem && r.name === defaultRuntime) problems.push(r.problem);
  const userNamespaces = await probeUserns(env);
  const subuid = uid === 0 ? [] : parseSubordinateIds(await readFile('/etc/subuid', 'utf8').catch(() => ''), { name, id: uid });
  const subgid = uid === 0 ? [] : parseSubordinateIds(await readFile('/etc/subgid', 'utf8').catch(() => ''), { name, id: uid });
  if (uid !== 0) {
    problems.push(...userNamespaces.problems);
    if (subuid.length === 0 || subgid.length === 0) {
      problems.push({
        message: `no subordinate ${subuid.length === 0 ? 'uids' : 'gids'} for ${name}: images with more than one user cannot be unpacked faithfully`,
        fix: `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${name}`,
      });
    }
  }
  if (cgroup.problem) problems.push(cgroup.problem);
  const state = defaultStateRoot(env, uid);
  if (state.warning) problems.push({ message: state.warning, fix: `export XDG_RUNTIME_DIR=/run/user/${uid}` });
  return {
    user: { name, uid, gid, rootless: uid !== 0 },
    runtimes,
    ...(defaultRuntime ? { defaultRuntime } : {}),
    userNamespaces,
    subuid,
    subgid,
    cgroup,
    store: o.storeRoot ?? defaultStoreRoot(env, uid),
    state: state.dir,
    problems,
  };
}
