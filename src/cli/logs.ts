import type { Command } from 'commander';
import { open } from 'node:fs/promises';
import { S2nError } from '../errors.js';
import { inspectContainer } from '../runtime/containers.js';
import { openStateStore, watcherAlive } from '../runtime/state.js';
import { action } from './context.js';
import { warn } from './output.js';

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description('print the output of a detached container')
    .argument('<container>', 'name or id')
    .option('-f, --follow', 'keep printing until the container exits')
    .action(
      action(async (ctx, name: string, flags: { follow?: boolean }) => {
        const state = await openStateStore({ warn: (l) => warn(ctx.out, l) });
        const r = await state.find(name);
        if (!r.logPath) {
          throw new S2nError('EUSAGE', `show logs of ${name}: it ran in the foreground, its output went to the terminal`, {
            hint: 'run it with -d to keep its output in a log',
          });
        }
        const fh = await open(r.logPath, 'r').catch(() => undefined);
        if (fh === undefined) return;
        try {
          const buf = Buffer.alloc(64 * 1024);
          let pos = 0;
          for (;;) {
            const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
            if (bytesRead > 0) {
              pos += bytesRead;
              if (!process.stdout.write(buf.subarray(0, bytesRead))) await new Promise((res) => process.stdout.once('drain', res));
              continue;
            }
            if (!flags.follow) break;
            // Done when the reaper is gone and the container with it; one more read catches the last bytes.
            if (!watcherAlive(r) && (await inspectContainer(state, r)).status === 'exited') {
              const last = await fh.read(buf, 0, buf.length, pos);
              if (last.bytesRead > 0) process.stdout.write(buf.subarray(0, last.bytesRead));
              if (last.bytesRead === 0) break;
              pos += last.bytesRead;
              continue;
            }
            await new Promise((res) => setTimeout(res, 200));
          }
        } finally {
          await fh.close();
        }
      }),
    );
}
