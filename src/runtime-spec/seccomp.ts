/**
 * The default seccomp profile: a denylist. Everything is allowed except
 * syscalls that reach kernel state a container has no business touching
 * (modules, kexec, the keyring, bpf, perf, mount APIs, clock, swap…), each
 * returning EPERM unless the container holds the capability that would make
 * the call legitimate (docker's "includes.caps" idea, decided here at
 * generation time).
 *
 * Why a denylist rather than docker's ~350-entry allowlist: the allowlist
 * must track every new syscall and architecture (a missing one breaks
 * programs with EPERM, as clone3/faccessat2 did), and the runc/crun versions
 * Debian ships differ in which names they know. The calls that matter for
 * escaping or abusing the kernel are few and stable; the rest is already
 * bounded by capabilities, no_new_privileges and the namespaces. Names used
 * here are all known to libseccomp 2.5 (unknown ones make crun warn).
 */
import type { LinuxSeccomp } from './spec-types.js';

interface DenyRule {
  names: string[];
  /** Allowed after all when the container has any of these. */
  unlessCaps?: string[];
}

export const SECCOMP_DENY: readonly DenyRule[] = [
  // The kernel keyring is not namespaced; io_uring bypasses seccomp for the operations it performs.
  { names: ['add_key', 'keyctl', 'request_key', 'io_uring_setup', 'io_uring_enter', 'io_uring_register'] },
  // Obsolete or pointless in a container.
  { names: ['uselib', 'nfsservctl', 'lookup_dcookie', 'ustat', 'sysfs', '_sysctl', 'create_module', 'get_kernel_syms', 'query_module'] },
  { names: ['init_module', 'finit_module', 'delete_module'], unlessCaps: ['CAP_SYS_MODULE'] },
  { names: ['kexec_load', 'kexec_file_load', 'reboot'], unlessCaps: ['CAP_SYS_BOOT'] },
  { names: ['acct'], unlessCaps: ['CAP_SYS_PACCT'] },
  { names: ['open_by_handle_at'], unlessCaps: ['CAP_DAC_READ_SEARCH'] },
  { names: ['iopl', 'ioperm'], unlessCaps: ['CAP_SYS_RAWIO'] },
  { names: ['settimeofday', 'stime', 'clock_settime', 'clock_adjtime', 'adjtimex'], unlessCaps: ['CAP_SYS_TIME'] },
  { names: ['syslog'], unlessCaps: ['CAP_SYSLOG'] },
  { names: ['vhangup'], unlessCaps: ['CAP_SYS_TTY_CONFIG'] },
  { names: ['bpf'], unlessCaps: ['CAP_SYS_ADMIN', 'CAP_BPF'] },
  { names: ['perf_event_open'], unlessCaps: ['CAP_SYS_ADMIN', 'CAP_PERFMON'] },
  { names: ['userfaultfd', 'kcmp', 'process_vm_readv', 'process_vm_writev'], unlessCaps: ['CAP_SYS_PTRACE'] },
  {
    names: [
      'mount', 'umount', 'umount2', 'pivot_root', 'swapon', 'swapoff', 'quotactl', 'quotactl_fd', 'fanotify_init', 'setdomainname',
      'sethostname', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'mount_setattr',
    ],
    unlessCaps: ['CAP_SYS_ADMIN'],
  },
];

/** libseccomp architectures a process of this image (GOARCH names) may use; the native one is implied. */
const ARCHES: Record<string, string[]> = {
  amd64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  '386': ['SCMP_ARCH_X86'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  arm: ['SCMP_ARCH_ARM'],
  ppc64le: ['SCMP_ARCH_PPC64LE'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
};

/**
 * The profile for a container with these bounding capabilities. The
 * architectures matter for a denylist: without them, a 32-bit syscall of an
 * unlisted architecture would not be filtered by name.
 */
export function defaultSeccomp(capabilities: readonly string[], architecture: string): LinuxSeccomp {
  const have = new Set(capabilities);
  const names = SECCOMP_DENY.filter((r) => !(r.unlessCaps ?? []).some((c) => have.has(c))).flatMap((r) => r.names);
  const seccomp: LinuxSeccomp = { defaultAction: 'SCMP_ACT_ALLOW' };
  const arches = ARCHES[architecture];
  if (arches !== undefined) seccomp.architectures = arches;
  if (names.length > 0) seccomp.syscalls = [{ names: [...names].sort(), action: 'SCMP_ACT_ERRNO', errnoRet: 1 }];
  return seccomp;
}
