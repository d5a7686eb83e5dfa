import type { Command } from 'commander';
import { S2nError } from '../errors.js';
import { stopContainer } from '../runtime/containers.js';
import { openStateStore } from '../runtime/state.js';
import { action } from './context.js';
import { result, warn } from './output.js';

export function registerStop(program: Command): void {
  program
    .command('stop')
    .description("stop containers: their StopSignal, then SIGKILL after a timeout")
    .argument('<container...>', 'names or ids')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .action(
      action(async (ctx, names: string[], flags: { time: string }) => {
        const secs = Number(flags.time);
        if (!Number.isFinite(secs) || secs < 0) throw new S2nError('EUSAGE', `stop: invalid --time ${flags.time}`, { hint: 'give a number of seconds' });
        const state = await openStateStore({ warn: (l) => warn(ctx.out, l) });
        for (const n of names) {
          const r = await state.find(n);
          await stopContainer(state, r, secs);
          result(ctx.out, n);
        }
      }),
    );
}
