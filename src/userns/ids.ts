/**
 * Which ownership mode this user can unpack and run in, and with which id
 * mappings. The runtime config uses exactly these mappings, so a rootfs built
 * under a plan and a container run under it agree on every uid.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { sysCode } from '../errors.js';
import { which } from '../which.js';
import type { IdMapping, IdPlan } from './types.js';

/** One line of /etc/subuid or /etc/subgid that applies to the user. */
export interface SubordinateRange {
  start: number;
  count: number;
}

/** Container ids 1..N map to the subordinate range; 65536 covers every id a normal image uses (nobody is 65534). */
export const MAX_SUBORDINATE_IDS = 65536;

/**
 * The ranges of `/etc/subuid`-style `text` that belong to the user, named by
 * login name or by numeric id (shadow-utils accepts both), in file order.
 * Malformed lines are skipped, as newuidmap does.
 */
export function parseSubordinateIds(text: string, user: { name?: string; id: number }): SubordinateRange[] {
  const out: SubordinateRange[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [who, start, count] = line.split(':');
    if (who === undefined || start === undefined || count === undefined) continue;
    if (who !== String(user.id) && (user.name === undefined || who !== user.name)) continue;
    if (!/^\d+$/.test(start) || !/^\d+$/.test(count)) continue;
    const r = { start: Number(start), count: Number(count) };
    if (r.count > 0) out.push(r);
  }
  return out;
}

export interface PlanInput {
  euid: number;
  egid: number;
  /** Login name, for /etc/subuid lines that name the user. */
  user?: string;
  subuid: string;
  subgid: string;
  /** newuidmap and newgidmap are both on PATH. */
  hasNewuidmap: boolean;
}

export interface PlanResult {
  plan: IdPlan;
  /** One line for the user when we fell back to a single mapping. */
  warning?: string;
}

function subidMappings(id: number, range: SubordinateRange): IdMapping[] {
  return [
    { containerID: 0, hostID: id, size: 1 },
    { containerID: 1, hostID: range.start, size: Math.min(range.count, MAX_SUBORDINATE_IDS) },
  ];
}

/** The plan for these facts (pure): root → 'root'; a user with ranges and newuidmap → 'subid'; else 'single'. */
export function planIds(input: PlanInput): PlanResult {
  if (input.euid === 0) return { plan: { mode: 'root', uidMappings: [], gidMappings: [] } };
  const single: IdPlan = {
    mode: 'single',
    uidMappings: [{ containerID: 0, hostID: input.euid, size: 1 }],
    gidMappings: [{ containerID: 0, hostID: input.egid, size: 1 }],
  };
  const uidRange = parseSubordinateIds(input.subuid, { id: input.euid, ...(input.user ? { name: input.user } : {}) })[0];
  // Groups are listed under the user's name too (useradd writes both files with the login name).
  const gidRange = parseSubordinateIds(input.subgid, { id: input.egid, ...(input.user ? { name: input.user } : {}) })[0]
    ?? parseSubordinateIds(input.subgid, { id: input.euid })[0];
  let why: string | undefined;
  if (uidRange === undefined || gidRange === undefined) {
    why = `${input.user ?? `uid ${input.euid}`} has no ${uidRange === undefined ? 'subordinate uid range in /etc/subuid' : 'subordinate gid range in /etc/subgid'}`;
  } else if (!input.hasNewuidmap) {
    why = 'newuidmap/newgidmap are not installed (package uidmap)';
  }
  if (why !== undefined || uidRange === undefined || gidRange === undefined) {
    return {
      plan: single,
      warning: `${why ?? 'no subordinate ids'}: every file of the image will be owned by the container's root, so images that run as another USER may fail (add a range with \`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${input.user ?? 'USER'}\`)`,
    };
  }
  return { plan: { mode: 'subid', uidMappings: subidMappings(input.euid, uidRange), gidMappings: subidMappings(input.egid, gidRange) } };
}

async function readOrEmpty(path: string): Promise<string> {
  try {
    // Synchronous: read on every run (see runtime/state.ts).
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (sysCode(e) === 'ENOENT' || sysCode(e) === 'EACCES') return '';
    throw e;
  }
}

export interface DetectOptions {
  subuidPath?: string;
  subgidPath?: string;
  env?: NodeJS.ProcessEnv;
}

/** planIds() for this process: its euid/egid, /etc/subuid, /etc/subgid and newuidmap on PATH. */
export async function detectIdPlan(opts: DetectOptions = {}): Promise<PlanResult> {
  const euid = process.geteuid?.() ?? 0;
  const egid = process.getegid?.() ?? 0;
  if (euid === 0) return planIds({ euid, egid, subuid: '', subgid: '', hasNewuidmap: false });
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = opts.env?.USER ?? process.env.USER;
  }
  const env = opts.env ?? process.env;
  const [subuid, subgid] = await Promise.all([readOrEmpty(opts.subuidPath ?? '/etc/subuid'), readOrEmpty(opts.subgidPath ?? '/etc/subgid')]);
  const hasNewuidmap = which('newuidmap', env) !== undefined && which('newgidmap', env) !== undefined;
  return planIds({ euid, egid, ...(user ? { user } : {}), subuid, subgid, hasNewuidmap });
}

/** `/proc/PID/uid_map` text → mappings (for checking a namespace against its plan). */
export function parseIdMap(text: string): IdMapping[] {
  const out: IdMapping[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue;
    out.push({ containerID: Number(f[0]), hostID: Number(f[1]), size: Number(f[2]) });
  }
  return out;
}

export function sameMappings(a: readonly IdMapping[], b: readonly IdMapping[]): boolean {
  const key = (m: readonly IdMapping[]): string => JSON.stringify([...m].map((x) => [x.containerID, x.hostID, x.size]).sort((p, q) => (p[0] ?? 0) - (q[0] ?? 0)));
  return key(a) === key(b);
}
