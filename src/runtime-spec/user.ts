/**
 * Resolve `-u`/the image's `User` against the rootfs' /etc/passwd and
 * /etc/group text, with runc's (and so docker's) rules:
 * - `name` or `uid`: the passwd entry gives gid and HOME; a numeric uid with
 *   no entry runs with gid 0 and HOME=/;
 * - supplementary groups are the groups listing the user's name as a member,
 *   and only when no group was given explicitly (`user:group` sets exactly one);
 * - a numeric group need not exist; a name that is not found is an error.
 */
import { S2nError } from '../errors.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups, without the primary gid, in /etc/group order. */
  additionalGids: number[];
  /** From passwd; '/' when the user has no entry. */
  home: string;
  /** The passwd name, when there is an entry. */
  name?: string;
}

export interface EtcFiles {
  passwd?: string;
  group?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Largest id the kernel accepts ((uid_t)-1 is "no change"). */
const MAX_ID = 2 ** 32 - 2;

function parseId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

function lines(text: string | undefined): string[][] {
  if (text === undefined) return [];
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

/** Malformed lines are skipped, as libc does. */
export function parsePasswd(text: string | undefined): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of lines(text)) {
    const uid = parseId(f[2] ?? '');
    const gid = parseId(f[3] ?? '');
    if (f[0] === undefined || f[0] === '' || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] !== undefined && f[5] !== '' ? f[5] : '/' });
  }
  return out;
}

export function parseGroup(text: string | undefined): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of lines(text)) {
    const gid = parseId(f[2] ?? '');
    if (f[0] === undefined || f[0] === '' || gid === undefined) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '') });
  }
  return out;
}

/**
 * `spec` is "", "name", "uid", "name:group", "uid:gid" (any mix). `image`
 * names the image in errors.
 */
export function resolveUser(spec: string, etc: EtcFiles, image = 'the image'): ResolvedUser {
  const colon = spec.indexOf(':');
  const userArg = (colon < 0 ? spec : spec.slice(0, colon)).trim();
  const groupArg = colon < 0 ? '' : spec.slice(colon + 1).trim();
  const fail = (what: string, hint: string): S2nError =>
    new S2nError('EUSAGE', `resolve user "${spec}": ${what}`, { hint, context: { user: spec, image } });

  const users = parsePasswd(etc.passwd);
  const uidArg = parseId(userArg);
  let uid: number;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  if (userArg === '') {
    uid = 0;
  } else if (uidArg !== undefined) {
    uid = uidArg;
  } else if (/^\d+$/.test(userArg)) {
    throw fail(`uid ${userArg} is out of range`, `give a uid from 0 to ${MAX_ID}`);
  } else {
    const entry = users.find((u) => u.name === userArg);
    if (entry === undefined) {
      throw fail(
        etc.passwd === undefined ? `${image} has no /etc/passwd to look up "${userArg}" in` : `no user "${userArg}" in /etc/passwd of ${image}`,
        'give a numeric uid (-u 1000 or -u 1000:1000), or a user that exists in the image',
      );
    }
    uid = entry.uid;
  }
  // The entry a name or a numeric uid matches gives gid, HOME and the name for group membership.
  const entry = userArg === '' ? users.find((u) => u.uid === 0) : users.find((u) => (uidArg !== undefined ? u.uid === uidArg : u.name === userArg));
  if (entry !== undefined) {
    gid = entry.gid;
    home = entry.home;
    name = entry.name;
  }

  const groups = parseGroup(etc.group);
  let additionalGids: number[] = [];
  if (groupArg !== '') {
    const gidArg = parseId(groupArg);
    const g = groups.find((x) => (gidArg !== undefined ? x.gid === gidArg : x.name === groupArg));
    if (g !== undefined) gid = g.gid;
    else if (gidArg !== undefined) gid = gidArg;
    else if (/^\d+$/.test(groupArg)) throw fail(`gid ${groupArg} is out of range`, `give a gid from 0 to ${MAX_ID}`);
    else {
      throw fail(
        etc.group === undefined ? `${image} has no /etc/group to look up "${groupArg}" in` : `no group "${groupArg}" in /etc/group of ${image}`,
        'give a numeric gid (-u USER:1000), or a group that exists in the image',
      );
    }
  } else if (name !== undefined) {
    const member = name;
    additionalGids = [...new Set(groups.filter((g) => g.members.includes(member)).map((g) => g.gid))].filter((g) => g !== gid);
  }
  return name === undefined ? { uid, gid, additionalGids, home } : { uid, gid, additionalGids, home, name };
}
