/**
 * What the runtime-spec generator needs to know about the host, gathered once
 * by the driver (src/runtime/host.ts) so the generator itself reads no files
 * and no environment.
 */
import type { IdPlan } from '../userns/types.js';

export type CgroupVersion = 1 | 2 | 'hybrid';

export interface HostFacts {
  /** The invoking user's effective ids. */
  uid: number;
  gid: number;
  /** True when not running as real root. */
  rootless: boolean;
  cgroup: {
    version: CgroupVersion;
    /** True when this user may set resource limits (root, or cgroup v2 with delegated controllers). */
    canManage: boolean;
    /** Controllers this user may use, e.g. ['cpu', 'memory', 'pids']. */
    controllers: string[];
    /**
     * Rootless on cgroup v2: the delegated cgroup (a path in the v2 hierarchy)
     * under which a container with limits gets its own cgroup.
     */
    parent?: string;
  };
  runtime: {
    name: 'runc' | 'crun';
    version: string;
  };
  /** The id plan the rootfs was unpacked with; the spec must use the same mappings. */
  ids: IdPlan;
  /**
   * The caller's RLIMIT_NOFILE hard limit (`ulimit -Hn`). Rootless, a
   * container cannot be given more, so the default nofile limit is this one;
   * when absent, rootless containers inherit the runtime's limits.
   */
  nofileHard?: number;
  /** The host's name: the container's default hostname with --network host, as podman does. */
  hostname?: string;
}
