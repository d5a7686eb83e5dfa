/**
 * Phase timestamps for profiling the start-up path: with S2N_OCI_TIMING=1,
 * `mark(label)` prints the milliseconds since the process started to stderr.
 * Off by default, and then free: the global `performance` (which loads
 * perf_hooks, ~1 ms) is touched only when on.
 */
const ON = process.env.S2N_OCI_TIMING === '1';

export function mark(label: string): void {
  if (ON) process.stderr.write(`s2n-oci timing ${performance.now().toFixed(1)} ms ${label}\n`);
}
