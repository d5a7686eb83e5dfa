/**
 * Caps on what the archive sources read into memory before the copy engine
 * sees anything (manifest.json, index.json, configs, manifests found while
 * matching Docker ≥ 25 archives). The values are the copy engine's
 * (copy.ts `Limits`), which enforces its own on everything it reads; they
 * are repeated here because sources sit below copy.ts and do not import it.
 */
export const ArchiveLimits = {
  manifestBytes: 4 * 1024 * 1024,
  configBytes: 8 * 1024 * 1024,
  totalJsonBytes: 16 * 1024 * 1024,
  layers: 256,
  indexDepth: 2,
  /** docker save's manifest.json lists every image with its layer paths: larger than one manifest, still small. */
  manifestJsonBytes: 8 * 1024 * 1024,
  /** oci-layout is one short JSON object. */
  layoutMarkerBytes: 4096,
} as const;
