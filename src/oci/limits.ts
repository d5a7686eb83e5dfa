/**
 * Limits on the JSON documents held in memory (layers are always streamed).
 * Shared by the copy engine and the sources that must read JSON before it does.
 */
export const Limits = {
  /** The distribution spec asks registries to accept manifests of at least 4 MiB. */
  manifestBytes: 4 * 1024 * 1024,
  configBytes: 8 * 1024 * 1024,
  /** Index + manifest + config together, so nested indexes cannot add up without bound. */
  totalJsonBytes: 16 * 1024 * 1024,
  layers: 256,
  indexDepth: 2,
} as const;
