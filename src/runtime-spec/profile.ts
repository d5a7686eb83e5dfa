/**
 * Run profiles: named sets of defaults (checked-in JSON in bundles/profiles/)
 * that sit between the image and the command line. Precedence, lowest first:
 * built-in defaults → image config → profile → command-line options.
 * Parsing is pure; reading the file is in load-profile.ts.
 */
import { S2nError } from '../errors.js';
import { parseMemory, parseTmpfs, type TmpfsMount } from './options.js';
import { resolveUser } from './user.js';

export type ImageVariant = 'prod' | 'dev';

export interface Profile {
  name: string;
  /** Which image variant this profile is meant for (the scanner picks s2n/runtime:prod or :dev from it). */
  variant?: ImageVariant;
  /** undefined: the built-in default (true). */
  readOnlyRoot?: boolean;
  /** Applied to podman's default set before the command line's --cap-drop/--cap-add. */
  capDrop: string[];
  capAdd: string[];
  noNewPrivileges?: boolean;
  /**
   * Run as this user when the image would run as root (uid 0) and no -u was
   * given; an image that already names a non-root USER keeps it. Ids, not
   * names, so it works with any image's /etc/passwd.
   */
  nonRootUser?: string;
  pidsLimit?: number;
  /** Bytes. */
  memory?: number;
  cpus?: number;
  /** Mounted for every container of this profile, unless a command-line mount takes the same path. */
  tmpfs: TmpfsMount[];
  /** NAME=VALUE, after the image's Env and before --env-file/-e. */
  env: string[];
  seccomp?: boolean;
}

/** What plain `run` (no --profile) uses: podman's defaults with a read-only root and tmpfs where programs write. */
export const DEFAULT_PROFILE: Profile = Object.freeze({
  name: 'default',
  capDrop: [],
  capAdd: [],
  tmpfs: [
    { type: 'tmpfs', target: '/tmp', mode: 0o1777, options: [] },
    { type: 'tmpfs', target: '/run', mode: 0o755, options: [] },
    { type: 'tmpfs', target: '/var/tmp', mode: 0o1777, options: [] },
  ],
  env: [],
}) as Profile;

const KEYS = new Set([
  '$comment', 'description', 'variant', 'readOnlyRoot', 'capDrop', 'capAdd', 'noNewPrivileges', 'nonRootUser',
  'pidsLimit', 'memory', 'cpus', 'tmpfs', 'env', 'seccomp',
]);

export const PROFILE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** Validate a profile document (parsed JSON or its text). EUSAGE naming the profile and the field on bad data. */
export function parseProfile(json: unknown, name: string): Profile {
  const bad = (what: string): S2nError =>
    new S2nError('EUSAGE', `load profile ${name}: ${what}`, {
      hint: 'fix the profile file (see bundles/profiles/README.md for its fields)',
      context: { profile: name },
    });
  let doc = json;
  if (typeof doc === 'string') {
    try {
      doc = JSON.parse(doc) as unknown;
    } catch (e) {
      throw bad(`not valid JSON (${(e as Error).message})`);
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('expected a JSON object');
  const d = doc as Record<string, unknown>;
  const unknown = Object.keys(d).find((k) => !KEYS.has(k));
  if (unknown !== undefined) throw bad(`unknown field "${unknown}"`);

  const bool = (k: string): boolean | undefined => {
    const v = d[k];
    if (v === undefined || typeof v === 'boolean') return v;
    throw bad(`"${k}" must be true or false`);
  };
  const strings = (k: string): string[] => {
    const v = d[k];
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string')) throw bad(`"${k}" must be an array of strings`);
    return v;
  };
  const rewrap = <T>(k: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw bad(`"${k}": ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  const p: Profile = { name, capDrop: strings('capDrop'), capAdd: strings('capAdd'), tmpfs: [], env: [] };
  const variant = d['variant'];
  if (variant !== undefined) {
    if (variant !== 'prod' && variant !== 'dev') throw bad('"variant" must be "prod" or "dev"');
    p.variant = variant;
  }
  const ro = bool('readOnlyRoot');
  if (ro !== undefined) p.readOnlyRoot = ro;
  const nnp = bool('noNewPrivileges');
  if (nnp !== undefined) p.noNewPrivileges = nnp;
  const sc = bool('seccomp');
  if (sc !== undefined) p.seccomp = sc;
  const user = d['nonRootUser'];
  if (user !== undefined) {
    if (typeof user !== 'string' || !/^\d+(:\d+)?$/.test(user)) throw bad('"nonRootUser" must be "UID" or "UID:GID" (numbers, so it needs no /etc/passwd)');
    if (rewrap('nonRootUser', () => resolveUser(user, {})).uid === 0) throw bad('"nonRootUser" must not be uid 0');
    p.nonRootUser = user;
  }
  const pids = d['pidsLimit'];
  if (pids !== undefined) {
    if (typeof pids !== 'number' || !Number.isSafeInteger(pids) || pids < 1) throw bad('"pidsLimit" must be a positive integer');
    p.pidsLimit = pids;
  }
  const mem = d['memory'];
  if (mem !== undefined) {
    if (typeof mem !== 'string') throw bad('"memory" must be a size string such as "1g"');
    p.memory = rewrap('memory', () => parseMemory(mem));
  }
  const cpus = d['cpus'];
  if (cpus !== undefined) {
    if (typeof cpus !== 'number' || !(cpus >= 0.01)) throw bad('"cpus" must be a number of CPUs, at least 0.01');
    p.cpus = cpus;
  }
  p.tmpfs = strings('tmpfs').map((t) => rewrap('tmpfs', () => parseTmpfs(t)));
  const env = d['env'];
  if (env !== undefined) {
    if (typeof env !== 'object' || env === null || Array.isArray(env)) throw bad('"env" must be an object of NAME: "value"');
    for (const [k, v] of Object.entries(env)) {
      if (typeof v !== 'string' || !/^[^=\s]+$/.test(k)) throw bad(`"env" entry "${k}" must be NAME: "string value"`);
      p.env.push(`${k}=${v}`);
    }
  }
  return p;
}
