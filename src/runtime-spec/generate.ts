/**
 * (image config, run options, profile, host facts) → runtime-spec config.
 * Pure: everything it needs comes in as arguments; the result is validated
 * against the vendored runtime-spec schema before it is returned.
 *
 * Precedence, lowest first: built-in defaults → image → profile → options.
 */
import { posix } from 'node:path';
import { S2nError } from '../errors.js';
import type { ContainerConfig, ImageConfig } from '../oci/types.js';
import { validateRuntimeConfig } from '../oci/validate.js';
import type { IdMapping } from '../userns/types.js';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, adjustCapabilities } from './capabilities.js';
import type { HostFacts } from './host-facts.js';
import { MASKED_PATHS, READONLY_PATHS, buildMounts } from './mounts.js';
import type { RunOptions } from './options.js';
import { processArgs, processEnv } from './process-args.js';
import type { Profile } from './profile.js';
import { defaultSeccomp } from './seccomp.js';
import type { Linux, LinuxResources, Rlimit, RuntimeSpec } from './spec-types.js';
import { resolveUser, type EtcFiles, type ResolvedUser } from './user.js';
import { ociVersionFor } from './version.js';

export interface GenerateInput {
  image: ImageConfig;
  options: RunOptions;
  profile: Profile;
  host: HostFacts;
  /** Absolute path of the rootfs. */
  rootfs: string;
  /** The rootfs' /etc/passwd and /etc/group text, when present. */
  etc: EtcFiles;
  /** Host paths of the files the driver writes into the bundle, bind-mounted at /etc/hosts, /etc/resolv.conf, /etc/hostname. */
  files: { hosts: string; resolvConf: string; hostname: string };
  /** The image as the user named it, for messages. */
  imageRef?: string;
  /** The container id; its first 12 characters are the hostname when nothing else gives one. */
  id?: string;
}

export interface GenerateResult {
  spec: RuntimeSpec;
  /** One line each, for stderr: limits that cannot be enforced, groups dropped… */
  warnings: string[];
}

/** Podman's nofile limit for root; rootless containers get the caller's hard limit when lower. */
export const DEFAULT_NOFILE = 1_048_576;
const CPU_PERIOD = 100_000;

export const ANNOTATION_STOP_SIGNAL = 'org.opencontainers.image.stopSignal';
export const ANNOTATION_PROFILE = 'io.s2n-oci.profile';

function usage(message: string, hint: string, context: Record<string, unknown> = {}): S2nError {
  return new S2nError('EUSAGE', message, { hint, context });
}

function mapped(id: number, maps: readonly IdMapping[]): boolean {
  return maps.some((m) => id >= m.containerID && id < m.containerID + m.size);
}

/** -u, else the image's User; a profile's nonRootUser replaces a root result when -u was not given. */
function chooseUser(config: ContainerConfig, input: GenerateInput, ref: string): ResolvedUser {
  const { options, profile, etc } = input;
  if (options.user !== undefined) return resolveUser(options.user, etc, ref);
  const fromImage = resolveUser(config.User ?? '', etc, ref);
  if (fromImage.uid !== 0 || profile.nonRootUser === undefined) return fromImage;
  return resolveUser(profile.nonRootUser, etc, ref);
}

/**
 * In a user namespace the process's ids must be mapped (else EUSAGE with the
 * fix); supplementary groups that are not, or that runc cannot set rootless,
 * are left out with a warning.
 */
function mappedGroups(user: ResolvedUser, host: HostFacts, ref: string, warnings: string[]): number[] {
  const { uidMappings, gidMappings, mode } = host.ids;
  if (!mapped(user.uid, uidMappings) || !mapped(user.gid, gidMappings)) {
    const plan = mode === 'single' ? 'root (no subordinate ids in /etc/subuid and /etc/subgid)' : 'part of the id range';
    throw usage(
      `run ${ref} as uid ${user.uid} gid ${user.gid}: the user namespace maps only ${plan}`,
      'give this user a subordinate id range (usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER), or run with -u 0',
    );
  }
  const dropped = user.additionalGids.filter((g) => !mapped(g, gidMappings));
  if (dropped.length > 0) warnings.push(`supplementary groups ${dropped.join(', ')} are left out: not mapped in the user namespace`);
  const kept = user.additionalGids.filter((g) => mapped(g, gidMappings));
  // runc refuses any additional group in a rootless container ("cannot set any additional groups"); crun sets them.
  if (host.runtime.name === 'runc' && kept.length > 0) {
    warnings.push(`supplementary groups ${kept.join(', ')} are left out: runc cannot set them in a rootless container (crun can)`);
    return [];
  }
  return kept;
}

function workingDir(config: ContainerConfig, options: RunOptions): string {
  if (options.workdir !== undefined) {
    if (!options.workdir.startsWith('/')) {
      throw usage(`parse -w ${JSON.stringify(options.workdir)}: the working directory must be an absolute path`, 'write it as /path/in/container');
    }
    return posix.normalize(options.workdir);
  }
  // Docker resolves a relative WorkingDir in an image against /.
  return config.WorkingDir !== undefined && config.WorkingDir !== '' ? posix.resolve('/', config.WorkingDir) : '/';
}

/**
 * RLIMIT_NOFILE: podman's 1048576, capped at the caller's hard limit when
 * known (raising it needs CAP_SYS_RESOURCE, which a rootless caller, and root
 * in many containers, does not have). Rootless with the limit unknown: not
 * set, so the container inherits the runtime's.
 */
function rlimits(options: RunOptions, host: HostFacts): Rlimit[] {
  const byType = new Map<string, Rlimit>();
  if (host.nofileHard !== undefined || !host.rootless) {
    const n = Math.min(host.nofileHard ?? DEFAULT_NOFILE, DEFAULT_NOFILE);
    byType.set('RLIMIT_NOFILE', { type: 'RLIMIT_NOFILE', soft: n, hard: n });
  }
  for (const u of options.ulimits ?? []) {
    if (host.rootless && u.name === 'nofile' && host.nofileHard !== undefined && u.hard > host.nofileHard) {
      throw usage(
        `set --ulimit nofile=${u.soft}:${u.hard}: above your hard limit ${host.nofileHard}`,
        `rootless containers cannot raise limits: use at most nofile=${host.nofileHard}, or raise yours (ulimit -Hn, /etc/security/limits.conf)`,
      );
    }
    const type = `RLIMIT_${u.name.toUpperCase()}`;
    byType.set(type, { type, soft: u.soft, hard: u.hard });
  }
  return [...byType.values()];
}

interface Limit {
  flag: string;
  controller: string;
  apply: (r: LinuxResources) => void;
}

/**
 * The deny-all device rule (runc's example spec has it; the runtime then
 * allows only its default devices). Not settable rootless. crun on cgroup v2
 * enforces it with an eBPF program and first raises RLIMIT_MEMLOCK, which
 * fails where root lacks CAP_SYS_RESOURCE (root inside a container); without
 * CAP_MKNOD the container cannot create device nodes beyond the runtime's
 * defaults anyway, so the rule is left out there.
 */
function deviceRuleWanted(host: HostFacts, caps: readonly string[]): boolean {
  if (host.rootless) return false;
  if (host.runtime.name === 'crun' && host.cgroup.version === 2) return caps.includes('CAP_MKNOD');
  return true;
}

function resources(input: GenerateInput, caps: readonly string[], warnings: string[]): LinuxResources | undefined {
  const { options, profile, host } = input;
  const res: LinuxResources = {};
  if (deviceRuleWanted(host, caps)) res.devices = [{ allow: options.privileged === true, access: 'rwm' }];

  const src = (cli: unknown, flag: string, what: string): string => (cli !== undefined ? flag : `the ${profile.name} profile's ${what} limit`);
  const limits: Limit[] = [];
  const memory = options.memory ?? profile.memory;
  if (memory !== undefined) limits.push({ flag: src(options.memory, '--memory', 'memory'), controller: 'memory', apply: (r) => (r.memory = { limit: memory }) });
  const cpus = options.cpus ?? profile.cpus;
  if (cpus !== undefined) {
    limits.push({ flag: src(options.cpus, '--cpus', 'cpu'), controller: 'cpu', apply: (r) => (r.cpu = { quota: Math.round(cpus * CPU_PERIOD), period: CPU_PERIOD }) });
  }
  const pids = options.pidsLimit ?? profile.pidsLimit;
  if (pids !== undefined && pids > 0) limits.push({ flag: src(options.pidsLimit, '--pids-limit', 'pids'), controller: 'pids', apply: (r) => (r.pids = { limit: pids }) });

  for (const l of limits) {
    if (!host.cgroup.canManage) {
      warnings.push(`${l.flag} cannot be enforced: this user cannot manage cgroups (cgroup v1 or no delegation); run as root or enable cgroup v2 delegation`);
    } else if (!host.cgroup.controllers.includes(l.controller)) {
      warnings.push(`${l.flag} cannot be enforced: the ${l.controller} cgroup controller is not available to this user; enable it (cgroup v2 delegation of "${l.controller}")`);
    } else {
      l.apply(res);
    }
  }
  return Object.keys(res).length > 0 ? res : undefined;
}

export function generateSpec(input: GenerateInput): GenerateResult {
  const { image, options, profile, host } = input;
  const ref = input.imageRef ?? 'the image';
  const config = image.config ?? {};
  const warnings: string[] = [];
  const privileged = options.privileged === true;
  const userns = host.rootless;

  if (privileged && host.rootless) {
    throw usage('run --privileged: refused for rootless containers', 'a rootless container cannot get host privileges; drop --privileged and add only the capabilities needed (--cap-add)');
  }
  if (!input.rootfs.startsWith('/')) throw new S2nError('EINTERNAL', `generate runtime config: rootfs path "${input.rootfs}" is not absolute`);
  if (userns && (host.ids.uidMappings.length === 0 || host.ids.gidMappings.length === 0)) {
    throw new S2nError('EINTERNAL', 'generate runtime config: a rootless container needs uid and gid mappings', {
      hint: 'this is a bug in s2n-oci; please report it with the output of s2n-oci info',
      context: { mode: host.ids.mode },
    });
  }

  const args = processArgs(config, options, ref);
  const user = chooseUser(config, input, ref);
  const additionalGids = userns ? mappedGroups(user, host, ref, warnings) : user.additionalGids;

  const network = options.network ?? 'host';
  const hostname = options.hostname ?? (network === 'host' ? host.hostname : undefined) ?? input.id?.slice(0, 12) ?? 's2n-oci';
  const readOnlyRoot = options.readOnly ?? profile.readOnlyRoot ?? true;

  // Capabilities: podman's set, then the profile's round, then the command line's.
  let caps = privileged ? [...ALL_CAPABILITIES] : adjustCapabilities(DEFAULT_CAPABILITIES, profile.capAdd, profile.capDrop, `profile ${profile.name}: `);
  caps = adjustCapabilities(caps, options.capAdd ?? [], options.capDrop ?? [], '--');
  // Like docker: a non-root process starts with no effective or permitted capabilities (it can still gain bounded ones through file caps).
  const active = user.uid === 0 ? caps : [];

  const namespaces: Linux['namespaces'] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (host.cgroup.version === 2) namespaces.push({ type: 'cgroup' });
  if (network === 'none') namespaces.push({ type: 'network' });
  if (userns) namespaces.push({ type: 'user' });

  const linux: Linux = { namespaces };
  if (userns) {
    linux.uidMappings = host.ids.uidMappings.map((m) => ({ ...m }));
    linux.gidMappings = host.ids.gidMappings.map((m) => ({ ...m }));
  }
  const res = resources(input, caps, warnings);
  if (res !== undefined) linux.resources = res;
  // Rootless limits need a cgroup this user may create: under the delegated parent. (Root's runtime picks its own.)
  if (userns && host.cgroup.parent !== undefined && input.id !== undefined && (res?.memory ?? res?.cpu ?? res?.pids) !== undefined) {
    linux.cgroupsPath = posix.join(host.cgroup.parent, `s2n-oci-${input.id}`);
  }
  if (!privileged && (options.seccomp ?? profile.seccomp ?? true)) linux.seccomp = defaultSeccomp(caps, image.architecture);
  if (!privileged) {
    linux.maskedPaths = [...MASKED_PATHS];
    linux.readonlyPaths = [...READONLY_PATHS];
  }

  const annotations: Record<string, string> = { ...config.Labels, ...options.labels, ...options.annotations };
  if (config.StopSignal !== undefined && config.StopSignal !== '') annotations[ANNOTATION_STOP_SIGNAL] = config.StopSignal;
  annotations[ANNOTATION_PROFILE] = profile.name;

  const limits = rlimits(options, host);
  const spec: RuntimeSpec = {
    ociVersion: ociVersionFor(host.runtime),
    process: {
      terminal: options.tty === true,
      user: { uid: user.uid, gid: user.gid, ...(additionalGids.length > 0 ? { additionalGids } : {}) },
      args,
      env: processEnv(config, profile.env, options, { hostname, home: user.home }),
      cwd: workingDir(config, options),
      capabilities: { bounding: caps, effective: [...active], permitted: [...active], inheritable: [], ambient: [] },
      ...(limits.length > 0 ? { rlimits: limits } : {}),
      noNewPrivileges: options.noNewPrivileges ?? profile.noNewPrivileges ?? true,
    },
    root: { path: input.rootfs, readonly: readOnlyRoot },
    hostname,
    mounts: buildMounts(
      { userns, gidMappings: host.ids.gidMappings, cgroupV2: host.cgroup.version === 2, network, privileged, readOnlyRoot, files: input.files },
      profile.tmpfs,
      options.mounts ?? [],
    ),
    annotations,
    linux,
  };
  validateRuntimeConfig(spec);
  return { spec, warnings };
}
