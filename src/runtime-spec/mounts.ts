/**
 * The container's mounts, in podman's order: kernel filesystems, /dev, /sys,
 * the profile's tmpfs, the /etc files, then the command line's mounts. A
 * command-line mount replaces a default one at the same path; two
 * command-line mounts at one path are refused, as docker does.
 */
import { S2nError } from '../errors.js';
import type { IdMapping } from '../userns/types.js';
import { cleanPath, type MountSpec, type NetworkMode, type TmpfsMount } from './options.js';
import type { Mount } from './spec-types.js';

/** podman's masked paths (containers/common DefaultMaskedPaths). */
export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats',
  '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/fs/selinux', '/sys/dev/block', '/sys/devices/virtual/powercap',
];

/** podman's read-only paths (containers/common DefaultReadOnlyPaths). */
export const READONLY_PATHS: readonly string[] = ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface MountContext {
  /** True when the container has its own user namespace (rootless). */
  userns: boolean;
  gidMappings: readonly IdMapping[];
  cgroupV2: boolean;
  network: NetworkMode;
  privileged: boolean;
  readOnlyRoot: boolean;
  files: { hosts: string; resolvConf: string; hostname: string };
}

/** The tty group; devpts gets gid=5 only when that gid exists in the container. */
const TTY_GID = 5;

function isMapped(id: number, maps: readonly IdMapping[]): boolean {
  return maps.some((m) => id >= m.containerID && id < m.containerID + m.size);
}

function systemMounts(ctx: MountContext): Mount[] {
  const ptsOptions = ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'];
  if (!ctx.userns || isMapped(TTY_GID, ctx.gidMappings)) ptsOptions.push(`gid=${TTY_GID}`);
  const ro = ctx.privileged ? 'rw' : 'ro';
  const mounts: Mount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ptsOptions },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
  ];
  if (ctx.userns && ctx.network === 'host') {
    // A user namespace that does not own the network namespace may not mount sysfs: bind the host's, read-only.
    // The rbind brings /sys/fs/cgroup along; on cgroup v2 a cgroup2 mount for the container's own cgroup namespace replaces it.
    mounts.push({ destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
    if (ctx.cgroupV2) mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
  } else if (ctx.userns) {
    // With its own network namespace the container may mount a sysfs, whose /sys/class/net then shows its own interfaces, not the host's.
    mounts.push({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
    if (ctx.cgroupV2) mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] });
  } else {
    mounts.push({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', ro] });
    mounts.push({ destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', ro] });
  }
  return mounts;
}

export function tmpfsMount(t: TmpfsMount): Mount {
  const options = ['nosuid', 'nodev', ...t.options.filter((o) => o !== 'nosuid' && o !== 'nodev')];
  options.push(t.readOnly === true ? 'ro' : 'rw');
  options.push(`mode=${(t.mode ?? 0o1777).toString(8)}`);
  if (t.size !== undefined) options.push(`size=${t.size}`);
  return { destination: cleanPath(t.target), type: 'tmpfs', source: 'tmpfs', options };
}

function userMount(m: MountSpec): Mount {
  if (m.type === 'tmpfs') return tmpfsMount(m);
  const propagation = m.options.some((o) => /^r?(private|shared|slave)$/.test(o)) ? [] : ['rprivate'];
  return { destination: cleanPath(m.target), type: 'bind', source: m.source, options: ['rbind', ...propagation, ...m.options, m.readOnly ? 'ro' : 'rw'] };
}

function etcMounts(ctx: MountContext): Mount[] {
  // Flags the bundle dir's filesystem may carry are repeated, so a rootless read-only remount keeps them (the kernel refuses to clear locked flags).
  const options = ['rbind', 'rprivate', 'nosuid', 'noexec', 'nodev', ctx.readOnlyRoot ? 'ro' : 'rw'];
  return [
    { destination: '/etc/hosts', type: 'bind', source: ctx.files.hosts, options },
    { destination: '/etc/resolv.conf', type: 'bind', source: ctx.files.resolvConf, options },
    { destination: '/etc/hostname', type: 'bind', source: ctx.files.hostname, options },
  ];
}

/** Mount points no user mount may replace: the container would not work (or be contained) without them. */
const RESERVED = new Set(['/', '/proc', '/dev', '/dev/pts', '/sys']);

export function buildMounts(ctx: MountContext, profileTmpfs: readonly TmpfsMount[], user: readonly MountSpec[]): Mount[] {
  const seen = new Set<string>();
  for (const m of user) {
    const target = cleanPath(m.target);
    if (RESERVED.has(target)) {
      throw new S2nError('EUSAGE', `mount ${target}: s2n-oci provides this path and it cannot be replaced`, {
        hint: 'mount below it instead, e.g. /dev/foo or /sys/bar',
        context: { target },
      });
    }
    if (seen.has(target)) {
      throw new S2nError('EUSAGE', `mount ${target}: two mounts for the same container path`, { hint: 'give one -v, --mount or --tmpfs per container path', context: { target } });
    }
    seen.add(target);
  }
  const keep = (m: Mount): boolean => !seen.has(m.destination);
  return [
    ...systemMounts(ctx).filter(keep),
    ...profileTmpfs.map(tmpfsMount).filter(keep),
    ...etcMounts(ctx).filter(keep),
    ...user.map(userMount),
  ];
}
