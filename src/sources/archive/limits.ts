import { Limits } from '../../oci/limits.js';

/** What the archive sources read into memory before the copy engine sees anything: the engine's limits plus two of their own. */
export const ArchiveLimits = {
  ...Limits,
  /** docker save's manifest.json lists every image with its layer paths: larger than one manifest, still small. */
  manifestJsonBytes: 8 * 1024 * 1024,
  /** oci-layout is one short JSON object. */
  layoutMarkerBytes: 4096,
} as const;
