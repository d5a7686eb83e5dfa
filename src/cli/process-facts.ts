/**
 * What this process knows about its own start: how the CLI was loaded (the
 * launcher, s2n-oci.cts, says so; `info` reports it) and which command's
 * action ran (main() returns it, and the launcher refreshes the build's code
 * cache after the first real `run` or `scan`). A module of its own so that
 * main need not load the command context (and the store) to reach it.
 */

/** Set by the launcher: the CLI runs as the bundle, with this code cache. */
export interface LaunchFacts {
  codeCache: 'accepted' | 'rejected' | 'none';
  cachePath: string;
}

let launch: LaunchFacts | undefined;
let ran: string | undefined;

export function recordLaunch(facts: LaunchFacts): void {
  launch = facts;
}

/** Undefined when the CLI runs as tsc's modules (node dist/src/cli/main.js). */
export function launchFacts(): LaunchFacts | undefined {
  return launch;
}

export function recordCommandRan(name: string): void {
  ran = name;
}

export function commandThatRan(): string | undefined {
  return ran;
}
