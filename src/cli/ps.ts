import type { Command } from 'commander';
import { cleanupStale, inspectContainer, type ContainerView } from '../runtime/containers.js';
import { openStateStore } from '../runtime/state.js';
import { action } from './context.js';
import { result, table, warn } from './output.js';

export function registerPs(program: Command): void {
  program
    .command('ps')
    .description('list containers (running ones; -a for all)')
    .option('-a, --all', 'also show containers that have exited')
    .option('-q, --quiet', 'print only container ids')
    .option('--json', 'print a JSON array')
    .action(
      action(async (ctx, flags: { all?: boolean; quiet?: boolean }) => {
        const state = await openStateStore({ warn: (l) => warn(ctx.out, l) });
        await cleanupStale(state);
        const views: ContainerView[] = [];
        for (const r of await state.list()) {
          const v = await inspectContainer(state, r);
          if (flags.all || v.status !== 'exited') views.push(v);
        }
        if (ctx.out.json) {
          return result(ctx.out, JSON.stringify(views.map((v) => ({ ...v.record, status: v.status, ...(v.pid ? { containerPid: v.pid } : {}) })), null, 2));
        }
        if (flags.quiet) return result(ctx.out, views.map((v) => v.record.id.slice(0, 12)).join('\n'));
        const rows = [['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES']];
        for (const v of views) {
          const r = v.record;
          const status = v.status === 'exited' ? `Exited${r.exitCode !== undefined ? ` (${r.exitCode})` : ''}` : v.status === 'running' ? 'Up' : v.status;
          const cmd = r.command.join(' ');
          rows.push([r.id.slice(0, 12), r.image?.ref ?? r.image?.digest?.slice(0, 19) ?? '', JSON.stringify(cmd.length > 30 ? `${cmd.slice(0, 27)}...` : cmd), r.created.replace('T', ' ').slice(0, 19), status, r.name]);
        }
        result(ctx.out, table(rows));
      }),
    );
}
