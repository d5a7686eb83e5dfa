/**
 * The part of the OCI runtime-spec config (v1.0.2 … v1.2.1) s2n-oci writes.
 * Fields newer than what runc 1.1 and crun 1.8 understand are left out on
 * purpose (see version.ts).
 */
import type { IdMapping } from '../userns/types.js';

export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface Rlimit {
  type: string;
  soft: number;
  hard: number;
}

export interface LinuxCapabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
  inheritable: string[];
  ambient: string[];
}

export interface Process {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids?: number[]; username?: string };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: LinuxCapabilities;
  rlimits?: Rlimit[];
  noNewPrivileges: boolean;
}

export interface LinuxSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
}

export interface LinuxSeccomp {
  defaultAction: string;
  architectures?: string[];
  syscalls?: LinuxSyscall[];
}

export interface LinuxResources {
  devices?: Array<{ allow: boolean; access?: string; type?: string; major?: number; minor?: number }>;
  memory?: { limit: number };
  cpu?: { quota: number; period: number };
  pids?: { limit: number };
}

export type NamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';

export interface Linux {
  namespaces: Array<{ type: NamespaceType; path?: string }>;
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
  resources?: LinuxResources;
  seccomp?: LinuxSeccomp;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  cgroupsPath?: string;
}

export interface RuntimeSpec {
  ociVersion: string;
  process: Process;
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: Mount[];
  annotations?: Record<string, string>;
  linux: Linux;
}
