#!/usr/bin/env node
import { CommanderError } from 'commander';
import { buildProgram } from './commands.js';
import { EXIT_RUNNER_ERROR } from './output.js';

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and --version exit 0; usage errors are runner errors, as in docker.
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_RUNNER_ERROR;
      return;
    }
    throw e;
  }
}

await main(process.argv);
