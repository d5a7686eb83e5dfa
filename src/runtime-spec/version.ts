/**
 * Which `ociVersion` to write for the installed runtime. runc checks it
 * against the range it was built for (1.1.x: 1.0.0 … 1.0.2-dev, as `runc
 * features` reports); crun reads any 1.x. We write the version each runtime
 * itself reports as its spec level, and use no field newer than that.
 *
 * | runtime        | ociVersion  |
 * |----------------|-------------|
 * | runc 1.0, 1.1  | 1.0.2-dev   |
 * | runc ≥ 1.2     | 1.2.0       |
 * | crun (any)     | 1.0.0       |
 */
import type { HostFacts } from './host-facts.js';

export function ociVersionFor(runtime: HostFacts['runtime']): string {
  if (runtime.name === 'crun') return '1.0.0';
  const m = /^(\d+)\.(\d+)/.exec(runtime.version);
  const major = Number(m?.[1] ?? 1);
  const minor = Number(m?.[2] ?? 1);
  return major > 1 || (major === 1 && minor >= 2) ? '1.2.0' : '1.0.2-dev';
}
