import type { Command } from 'commander';
import { removeContainer } from '../runtime/containers.js';
import { openStateStore } from '../runtime/state.js';
import { action } from './context.js';
import { result, warn } from './output.js';

export function registerRm(program: Command): void {
  program
    .command('rm')
    .description('remove containers (their state, bundle and log)')
    .argument('<container...>', 'names or ids')
    .option('-f, --force', 'kill running containers first')
    .action(
      action(async (ctx, names: string[], flags: { force?: boolean }) => {
        const state = await openStateStore({ warn: (l) => warn(ctx.out, l) });
        for (const n of names) {
          const r = await state.find(n);
          await removeContainer(state, r, { force: flags.force === true });
          result(ctx.out, n);
        }
      }),
    );
}
