/** Capability sets: podman's defaults, --cap-add/--cap-drop with ALL, as docker resolves them. */
import { S2nError } from '../errors.js';

/** Every capability up to Linux 5.9 (CAP_CHECKPOINT_RESTORE = 40), in kernel order: what ALL means. */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW',
  'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD',
  'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** podman's default_capabilities (containers.conf), sorted. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_SETFCAP',
  'CAP_SETGID', 'CAP_SETPCAP', 'CAP_SETUID', 'CAP_SYS_CHROOT',
];

const KNOWN = new Set(ALL_CAPABILITIES);

/** "net_raw", "NET_RAW", "CAP_NET_RAW" → "CAP_NET_RAW"; "all" → "ALL"; unknown → EUSAGE. */
export function normalizeCapability(name: string, flag: string): string {
  const up = name.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  const cap = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!KNOWN.has(cap)) {
    throw new S2nError('EUSAGE', `parse ${flag} ${JSON.stringify(name)}: unknown capability`, {
      hint: 'give a name from capabilities(7), with or without CAP_, or ALL',
      context: { capability: name },
    });
  }
  return cap;
}

/**
 * One round of docker's rules: ALL in drop empties the set, ALL in add fills
 * it; then named drops are removed and named adds added (an add wins over a
 * drop of the same name).
 */
export function adjustCapabilities(base: readonly string[], add: readonly string[], drop: readonly string[], where: string): string[] {
  const adds = add.map((c) => normalizeCapability(c, `${where}cap-add`));
  const drops = drop.map((c) => normalizeCapability(c, `${where}cap-drop`));
  let set = new Set(base);
  if (drops.includes('ALL')) set = new Set();
  if (adds.includes('ALL')) set = new Set(ALL_CAPABILITIES);
  for (const c of drops) if (c !== 'ALL') set.delete(c);
  for (const c of adds) if (c !== 'ALL') set.add(c);
  return ALL_CAPABILITIES.filter((c) => set.has(c));
}
