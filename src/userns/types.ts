/**
 * The vocabulary shared by unpack (chown inside a user namespace), the rootfs
 * cache (which records the mode a rootfs was built in) and the runtime spec
 * (which must map ids exactly as the rootfs was built).
 */

/** One id range, in the runtime-spec's LinuxIDMapping shape. */
export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

/**
 * How file ownership inside a rootfs relates to the host:
 * - 'root': built by real root; image uids are host uids, no user namespace.
 * - 'subid': container 0 -> the user, 1..N -> the user's subordinate range.
 * - 'single': only container 0 -> the user; every file is owned by container root.
 */
export type OwnershipMode = 'root' | 'subid' | 'single';

export interface IdPlan {
  mode: OwnershipMode;
  /** Empty for 'root'. */
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
}
