/**
 * The CLI as a function. Two entry points call it: main.js (ES module, for
 * `node dist/src/cli/main.js` and development) and s2n-oci.cjs, the installed
 * command, which loads the bundle of this module with a V8 code cache.
 * No top-level await here: the bundle is CommonJS.
 */
import { buildProgram, commander } from './commands.js';
import { mark } from '../runtime/timing.js';
import { commandThatRan, recordLaunch, type LaunchFacts } from './process-facts.js';
import { EXIT_RUNNER_ERROR } from './output.js';

/** Runs the command line; resolves with the name of the command whose action ran (none for help, usage errors). */
export async function main(argv: string[], launch?: LaunchFacts): Promise<string | undefined> {
  mark('main');
  if (launch) recordLaunch(launch);
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof commander.CommanderError) {
      // Help and --version exit 0; usage errors are runner errors, as in docker.
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_RUNNER_ERROR;
      return undefined;
    }
    throw e;
  }
  mark('main done');
  return commandThatRan();
}
