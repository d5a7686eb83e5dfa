/** The runtime-spec generator's public surface, for the CLI and the driver. */
export { generateSpec, DEFAULT_NOFILE, ANNOTATION_PROFILE, ANNOTATION_STOP_SIGNAL, type GenerateInput, type GenerateResult } from './generate.js';
export type { HostFacts, CgroupVersion } from './host-facts.js';
export {
  parseVolume, parseMountSpec, parseTmpfs, parseMemory, parseSize, parseCpus, parsePidsLimit, parseUlimit, parseEnvFile, parseEnvVar,
  parseKeyValue, parseNetwork, MIN_MEMORY, ULIMIT_NAMES,
  type RunOptions, type MountSpec, type BindMount, type TmpfsMount, type Ulimit, type NetworkMode,
} from './options.js';
export { DEFAULT_PROFILE, parseProfile, PROFILE_NAME, type Profile, type ImageVariant } from './profile.js';
export { loadProfile, findBundlesDir } from './load-profile.js';
export { resolveUser, parsePasswd, parseGroup, type ResolvedUser, type EtcFiles } from './user.js';
export { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, adjustCapabilities, normalizeCapability } from './capabilities.js';
export { defaultSeccomp, SECCOMP_DENY } from './seccomp.js';
export { MASKED_PATHS, READONLY_PATHS } from './mounts.js';
export { DEFAULT_PATH } from './process-args.js';
export { ociVersionFor } from './version.js';
export type { RuntimeSpec, Mount, Rlimit, LinuxSeccomp, LinuxResources } from './spec-types.js';
