#!/usr/bin/env node
import { buildProgram, commander } from './commands.js';
import { mark } from '../runtime/timing.js';
import { EXIT_RUNNER_ERROR } from './output.js';

export async function main(argv: string[]): Promise<void> {
  mark('main');
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof commander.CommanderError) {
      // Help and --version exit 0; usage errors are runner errors, as in docker.
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_RUNNER_ERROR;
      return;
    }
    throw e;
  }
}

await main(process.argv);
mark('main done');
