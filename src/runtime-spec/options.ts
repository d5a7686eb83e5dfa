/**
 * What `s2n-oci run` accepts that shapes the runtime config, and pure parsers
 * for each command-line string form. Parsers throw S2nError('EUSAGE') with
 * the flag named, so the CLI can pass their errors through unchanged.
 *
 * `undefined` always means "not given on the command line": the profile's
 * value applies, then the built-in default. That is how command-line options
 * override a profile without the profile overriding explicit flags.
 */
import { posix } from 'node:path';
import { S2nError } from '../errors.js';

export type NetworkMode = 'host' | 'none';

/** Mount propagation and per-mount flags `-v` and `--mount` pass through to the runtime. */
const PASS_THROUGH_OPTIONS: ReadonlySet<string> = new Set([
  'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave',
  'nosuid', 'suid', 'nodev', 'dev', 'noexec', 'exec',
]);

export interface BindMount {
  type: 'bind';
  /** Absolute host path. */
  source: string;
  /** Absolute container path. */
  target: string;
  readOnly: boolean;
  /** Extra mount options: propagation, nosuid, nodev, noexec… */
  options: string[];
}

export interface TmpfsMount {
  type: 'tmpfs';
  target: string;
  /** Bytes; undefined: the kernel's default (half of RAM). */
  size?: number;
  /** Octal permission bits of the tmpfs root, e.g. 0o1777. */
  mode?: number;
  readOnly?: boolean;
  /** Extra mount options: noexec, nosuid, nodev, exec… */
  options: string[];
}

export type MountSpec = BindMount | TmpfsMount;

export interface Ulimit {
  /** Lower-case name as given: nofile, nproc, core… */
  name: string;
  soft: number;
  hard: number;
}

export interface RunOptions {
  /** `--entrypoint`: replaces the image Entrypoint and clears its Cmd; '' clears the Entrypoint. Split on nothing: one program. */
  entrypoint?: string;
  /** The words after REF; replace the image Cmd when non-empty. */
  command?: string[];
  /** `-e NAME=VALUE` or `-e NAME` (taken from `callerEnv`, dropped when unset there, as docker does), in order. */
  env?: string[];
  /** `--env-file` contents (the text, already read), in order. Bare NAME lines are taken from `callerEnv` too. */
  envFiles?: string[];
  /** The invoking process's environment, only to resolve bare `-e NAME` and env-file NAME lines (the generator reads no environment itself). */
  callerEnv?: Record<string, string | undefined>;
  /** `-w`: absolute container path. */
  workdir?: string;
  /** `-u`: name, uid, name:group, uid:gid. */
  user?: string;
  /** `--hostname`. */
  hostname?: string;
  /** `--read-only[=true|false]`; default true. */
  readOnly?: boolean;
  /** `-v`, `--mount`, `--tmpfs`, parsed with parseVolume/parseMountSpec/parseTmpfs, in command-line order. */
  mounts?: MountSpec[];
  /** `--network host|none`; default host (the scanner must reach its targets). */
  network?: NetworkMode;
  /** `--cap-add`, `--cap-drop`: names with or without CAP_, any case, or ALL. */
  capAdd?: string[];
  capDrop?: string[];
  /** `--privileged`: every capability, no seccomp, no masked paths. Refused when rootless. */
  privileged?: boolean;
  /** `--ulimit`, parsed with parseUlimit. */
  ulimits?: Ulimit[];
  /** `--memory`, bytes (parseMemory). */
  memory?: number;
  /** `--cpus`, e.g. 1.5 (parseCpus). */
  cpus?: number;
  /** `--pids-limit`; 0 or -1: unlimited. */
  pidsLimit?: number;
  /** `-t`. */
  tty?: boolean;
  /** `-i`: does not change the config (stdin is the driver's business); kept so one object carries every flag. */
  interactive?: boolean;
  /** `--security-opt no-new-privileges[=true|false]`; default true. */
  noNewPrivileges?: boolean;
  /** `--security-opt seccomp=unconfined` gives false; default true. */
  seccomp?: boolean;
  /** `--annotation KEY=VALUE` (parseKeyValue). */
  annotations?: Record<string, string>;
  /** `--label KEY=VALUE`: recorded as annotations too, below --annotation. */
  labels?: Record<string, string>;
}

function usage(message: string, hint: string, context: Record<string, unknown> = {}): S2nError {
  return new S2nError('EUSAGE', message, { hint, context });
}

/** Normalised, without a trailing slash (so /data/ and /data are the same mount point). */
export function cleanPath(p: string): string {
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

function requireAbsoluteTarget(flag: string, text: string, target: string): string {
  if (target === '' || !target.startsWith('/')) {
    throw usage(`parse ${flag} ${JSON.stringify(text)}: the container path "${target}" is not absolute`, `write it as /path/in/container`, { value: text });
  }
  return cleanPath(target);
}

/**
 * A host path from `-v` or `--mount`: absolute, or relative starting with
 * `./`/`../` (resolved against cwd). Anything else is what docker calls a
 * named volume, which s2n-oci has no store for.
 */
function hostPath(flag: string, text: string, source: string, cwd: string): string {
  if (source.startsWith('/')) return cleanPath(source);
  if (source === '.' || source === '..' || source.startsWith('./') || source.startsWith('../')) return posix.resolve(cwd, source);
  if (source === '') throw usage(`parse ${flag} ${JSON.stringify(text)}: the host path is empty`, 'write it as /host/path:/container/path');
  throw usage(
    `parse ${flag} ${JSON.stringify(text)}: "${source}" is a named volume, which s2n-oci does not support`,
    `bind a host directory instead: write it as ./${source} or an absolute path`,
    { value: text },
  );
}

/** `-v HOST:CTR[:OPTS]`, OPTS comma-separated: ro, rw, z, Z (accepted, no SELinux relabelling here), propagation, nosuid… */
export function parseVolume(text: string, cwd: string): BindMount {
  const parts = text.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw usage(`parse -v ${JSON.stringify(text)}: expected HOST:CONTAINER[:OPTIONS]`, 'for example -v ./data:/data:ro');
  }
  const [src = '', dst = '', opts = ''] = parts;
  const source = hostPath('-v', text, src, cwd);
  const target = requireAbsoluteTarget('-v', text, dst);
  let readOnly = false;
  const options: string[] = [];
  for (const o of opts === '' ? [] : opts.split(',')) {
    if (o === 'ro') readOnly = true;
    else if (o === 'rw') readOnly = false;
    else if (o === 'z' || o === 'Z') continue; // SELinux relabel: s2n-oci sets no labels, so there is nothing to relabel.
    else if (PASS_THROUGH_OPTIONS.has(o)) options.push(o);
    else throw usage(`parse -v ${JSON.stringify(text)}: unknown option "${o}"`, 'options are ro, rw, z, Z, nosuid, nodev, noexec and the propagation modes (rprivate, rshared, rslave…)');
  }
  return { type: 'bind', source, target, readOnly, options };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Docker's size form: a number with an optional b/k/m/g/t unit (binary, any case, optional trailing b: 512m, 1g, 1GB). */
export function parseSize(text: string, flag = '--memory'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(text.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (m === null || unit === undefined) {
    throw usage(`parse ${flag} ${JSON.stringify(text)}: not a size`, 'write a number with an optional unit: 512m, 1g, 65536k');
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw usage(`parse ${flag} ${JSON.stringify(text)}: must be a positive size`, 'for example 512m or 1g');
  return bytes;
}

/** Below this the kernel's own overhead makes a container fail to start (docker and podman refuse it too). */
export const MIN_MEMORY = 6 * 1024 * 1024;

/** `--memory 512m` → bytes. */
export function parseMemory(text: string): number {
  const bytes = parseSize(text, '--memory');
  if (bytes < MIN_MEMORY) throw usage(`parse --memory ${JSON.stringify(text)}: the minimum is 6m`, 'give at least --memory 6m');
  return bytes;
}

/** `--cpus 1.5` → 1.5 (a number of CPUs, fractional allowed). */
export function parseCpus(text: string): number {
  const n = /^\d+(\.\d+)?$|^\.\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isFinite(n) || n <= 0) throw usage(`parse --cpus ${JSON.stringify(text)}: not a positive number`, 'for example --cpus 1.5');
  if (n * 100_000 < 1000) throw usage(`parse --cpus ${JSON.stringify(text)}: the minimum is 0.01`, 'give at least --cpus 0.01');
  return n;
}

/** `--pids-limit N`; 0 and -1 mean unlimited. */
export function parsePidsLimit(text: string): number {
  if (!/^-?\d+$/.test(text.trim())) throw usage(`parse --pids-limit ${JSON.stringify(text)}: not an integer`, 'for example --pids-limit 256 (-1: unlimited)');
  const n = Number(text);
  if (n < -1 || !Number.isSafeInteger(n)) throw usage(`parse --pids-limit ${JSON.stringify(text)}: must be -1, 0 or positive`, 'for example --pids-limit 256');
  return n;
}

/** RLIMIT_* names `--ulimit` accepts, as docker does. */
export const ULIMIT_NAMES: ReadonlySet<string> = new Set([
  'as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack',
]);

/**
 * `--ulimit nofile=1024:2048` (soft:hard) or `nofile=1024` (both). Unlimited
 * (-1) is refused: RLIM_INFINITY is 2^64-1, which a JSON number from
 * JavaScript cannot carry exactly.
 */
export function parseUlimit(text: string): Ulimit {
  const m = /^([a-z]+)=(\d+)(?::(\d+))?$/.exec(text.trim());
  const bad = (why: string): S2nError =>
    usage(`parse --ulimit ${JSON.stringify(text)}: ${why}`, 'write NAME=SOFT[:HARD] with NAME one of ' + [...ULIMIT_NAMES].join(', ') + ', e.g. nofile=1024:2048');
  if (m === null) {
    if (/=\s*-1|unlimited/.test(text)) throw bad('unlimited is not supported');
    throw bad('expected NAME=SOFT[:HARD]');
  }
  const [, name = '', softText = '', hardText] = m;
  if (!ULIMIT_NAMES.has(name)) throw bad(`unknown limit "${name}"`);
  const soft = Number(softText);
  const hard = hardText === undefined ? soft : Number(hardText);
  if (!Number.isSafeInteger(soft) || !Number.isSafeInteger(hard)) throw bad('value too large');
  if (soft > hard) throw bad(`the soft limit ${soft} is above the hard limit ${hard}`);
  return { name, soft, hard };
}

/** `--tmpfs /run[:OPTS]`, OPTS like mount(8): size=64m, mode=1777, ro, rw, noexec, exec, nosuid, nodev. */
export function parseTmpfs(text: string): TmpfsMount {
  const i = text.indexOf(':');
  const target = requireAbsoluteTarget('--tmpfs', text, i < 0 ? text : text.slice(0, i));
  const mount: TmpfsMount = { type: 'tmpfs', target, options: [] };
  for (const o of i < 0 ? [] : text.slice(i + 1).split(',').filter((x) => x !== '')) {
    const [k = '', v] = o.split('=', 2);
    if (k === 'size' && v !== undefined) mount.size = parseSize(v, '--tmpfs size');
    else if (k === 'mode' && v !== undefined) mount.mode = parseMode('--tmpfs', text, v);
    else if (o === 'ro') mount.readOnly = true;
    else if (o === 'rw') mount.readOnly = false;
    else if (PASS_THROUGH_OPTIONS.has(o) || o === 'exec' || o === 'noexec') mount.options.push(o);
    else throw usage(`parse --tmpfs ${JSON.stringify(text)}: unknown option "${o}"`, 'options are size=, mode=, ro, rw, exec, noexec, nosuid, nodev');
  }
  return mount;
}

function parseMode(flag: string, text: string, v: string): number {
  if (!/^[0-7]{1,4}$/.test(v)) throw usage(`parse ${flag} ${JSON.stringify(text)}: mode "${v}" is not octal`, 'for example mode=1777');
  return parseInt(v, 8);
}

function parseBool(flag: string, text: string, key: string, v: string | undefined): boolean {
  if (v === undefined || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw usage(`parse ${flag} ${JSON.stringify(text)}: ${key}=${v} is not true or false`, `write ${key} or ${key}=false`);
}

/**
 * `--mount type=bind,source=/a,target=/b[,readonly][,bind-propagation=rslave]`
 * or `type=tmpfs,target=/t[,tmpfs-size=64m][,tmpfs-mode=1777]`. Keys as
 * docker's: src/source, dst/destination/target, ro/readonly.
 */
export function parseMountSpec(text: string, cwd: string): MountSpec {
  const fields = new Map<string, string | undefined>();
  for (const part of text.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    fields.set(key, eq < 0 ? undefined : part.slice(eq + 1));
  }
  const get = (...keys: string[]): string | undefined => keys.map((k) => fields.get(k)).find((v) => v !== undefined);
  const type = fields.get('type') ?? 'volume';
  const known = new Set(['type', 'src', 'source', 'dst', 'destination', 'target', 'ro', 'readonly', 'bind-propagation', 'tmpfs-size', 'tmpfs-mode']);
  const unknown = [...fields.keys()].find((k) => !known.has(k));
  if (unknown !== undefined) {
    throw usage(`parse --mount ${JSON.stringify(text)}: unknown key "${unknown}"`, 'keys are type, source, target, readonly, bind-propagation, tmpfs-size, tmpfs-mode');
  }
  const target = requireAbsoluteTarget('--mount', text, get('target', 'dst', 'destination') ?? '');
  const roKey = fields.has('readonly') ? 'readonly' : fields.has('ro') ? 'ro' : undefined;
  const readOnly = roKey === undefined ? false : parseBool('--mount', text, roKey, fields.get(roKey));
  if (type === 'bind') {
    const src = get('source', 'src');
    if (src === undefined) throw usage(`parse --mount ${JSON.stringify(text)}: a bind mount needs source=`, 'for example --mount type=bind,source=./data,target=/data');
    const options: string[] = [];
    const prop = fields.get('bind-propagation');
    if (prop !== undefined) {
      if (!PASS_THROUGH_OPTIONS.has(prop) || /suid|dev|exec/.test(prop)) {
        throw usage(`parse --mount ${JSON.stringify(text)}: bind-propagation=${prop} is not a propagation mode`, 'use private, rprivate, shared, rshared, slave or rslave');
      }
      options.push(prop);
    }
    return { type: 'bind', source: hostPath('--mount', text, src, cwd), target, readOnly, options };
  }
  if (type === 'tmpfs') {
    if (get('source', 'src') !== undefined) throw usage(`parse --mount ${JSON.stringify(text)}: a tmpfs mount has no source`, 'drop source=');
    const mount: TmpfsMount = { type: 'tmpfs', target, options: [] };
    const size = fields.get('tmpfs-size');
    if (size !== undefined) mount.size = parseSize(size, '--mount tmpfs-size');
    const mode = fields.get('tmpfs-mode');
    if (mode !== undefined) mount.mode = parseMode('--mount', text, mode);
    if (readOnly) mount.readOnly = true;
    return mount;
  }
  throw usage(
    `parse --mount ${JSON.stringify(text)}: type=${type} is not supported`,
    type === 'volume' ? 'named volumes are not supported: use type=bind with a host directory' : 'use type=bind or type=tmpfs',
  );
}

/**
 * An `--env-file`: one NAME=VALUE per line, `#` comments and blank lines
 * skipped, no quoting or expansion (docker's rules). A bare NAME line means
 * "take it from the caller's environment": it is returned in `names` for the
 * CLI to resolve, since the generator reads no environment.
 */
export function parseEnvFile(text: string, what = '--env-file'): { env: string[]; names: string[] } {
  const env: string[] = [];
  const names: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const name = eq < 0 ? line.trimEnd() : line.slice(0, eq);
    if (name === '' || /\s/.test(name)) {
      throw usage(`parse ${what} line ${i + 1}: "${raw}" is not NAME=VALUE`, 'each line is NAME=VALUE, NAME, a # comment, or blank');
    }
    if (eq < 0) names.push(name);
    else env.push(line);
  });
  return { env, names };
}

/** `-e NAME=VALUE` (after the CLI resolved bare names). */
export function parseEnvVar(text: string): { name: string; value: string } {
  const eq = text.indexOf('=');
  if (eq <= 0) throw usage(`parse -e ${JSON.stringify(text)}: expected NAME=VALUE`, 'write -e NAME=VALUE, or -e NAME to pass NAME from your environment');
  return { name: text.slice(0, eq), value: text.slice(eq + 1) };
}

/** `--annotation`/`--label KEY=VALUE`. */
export function parseKeyValue(text: string, flag: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw usage(`parse ${flag} ${JSON.stringify(text)}: expected KEY=VALUE`, `for example ${flag} org.example.team=security`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

export function parseNetwork(text: string): NetworkMode {
  if (text === 'host' || text === 'none') return text;
  throw usage(`parse --network ${JSON.stringify(text)}: unsupported network`, 's2n-oci supports --network host (the default) and --network none');
}
