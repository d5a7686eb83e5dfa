#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT_RUNNER_ERROR } from './output.js';
import { registerPull } from './pull.js';
import { registerImages } from './images.js';
import { registerInspect } from './inspect.js';
import { registerRmi } from './rmi.js';
import { registerPrune } from './prune.js';
import { registerLogin, registerLogout } from './login.js';

export function buildProgram(): Command {
  const program = new Command('s2n-oci')
    .description('Pull and run OCI images without a daemon or root')
    .version('0.1.0')
    .option('--root <dir>', 'store location (default $S2N_OCI_ROOT, ~/.local/share/s2n-oci, /var/lib/s2n-oci as root)')
    .option('--debug', 'print error context and stack traces')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of [registerPull, registerImages, registerInspect, registerRmi, registerPrune, registerLogin, registerLogout]) {
    register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
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
