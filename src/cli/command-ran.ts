/**
 * Which command's action ran in this process: main() returns it, and the
 * launcher (s2n-oci.cts) refreshes the build's code cache after the first
 * real `run` or `scan`. A module of its own so that main need not load the
 * command context (and the store) to read it.
 */
let ran: string | undefined;

export function recordCommandRan(name: string): void {
  ran = name;
}

export function commandThatRan(): string | undefined {
  return ran;
}
