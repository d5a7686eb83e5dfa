import type { Command } from 'commander';
import { S2nError } from '../errors.js';
import { inspectContainer, runtimeFor } from '../runtime/containers.js';
import { signalNumber } from '../runtime/exit-status.js';
import { openStateStore } from '../runtime/state.js';
import { action } from './context.js';
import { result, warn } from './output.js';

export function registerKill(program: Command): void {
  program
    .command('kill')
    .description('send a signal to running containers (default SIGKILL)')
    .argument('<container...>', 'names or ids')
    .option('-s, --signal <signal>', 'signal name or number', 'SIGKILL')
    .action(
      action(async (ctx, names: string[], flags: { signal: string }) => {
        const sig = /^\d+$/.test(flags.signal) ? Number(flags.signal) : flags.signal.toUpperCase();
        if (typeof sig === 'string' && signalNumber(sig) === undefined) {
          throw new S2nError('EUSAGE', `kill: unknown signal ${flags.signal}`, { hint: 'use a name like TERM, SIGHUP or a number' });
        }
        const state = await openStateStore({ warn: (l) => warn(ctx.out, l) });
        for (const n of names) {
          const r = await state.find(n);
          if ((await inspectContainer(state, r)).status === 'exited') {
            throw new S2nError('EUSAGE', `kill container ${n}: it is not running`, { hint: 'see s2n-oci ps -a' });
          }
          await runtimeFor(state, r).kill(r.id, typeof sig === 'number' ? sig : sig.startsWith('SIG') ? sig : `SIG${sig}`);
          result(ctx.out, n);
        }
      }),
    );
}
