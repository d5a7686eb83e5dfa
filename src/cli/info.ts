import type { Command } from 'commander';
import { hostReport, type HostReport } from '../runtime/host-report.js';
import { action } from './context.js';
import { result } from './output.js';

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show what this host offers for running containers, and how to fix what is missing')
    .option('--json', 'print a JSON object')
    .action(
      action(async (ctx) => {
        const r = await hostReport({ storeRoot: ctx.storeRoot });
        result(ctx.out, ctx.out.json ? JSON.stringify(r, null, 2) : render(r));
      }),
    );
}

function ranges(rs: HostReport['subuid']): string {
  return rs.length === 0 ? 'none' : rs.map((r) => `${r.start}:${r.count}`).join(', ');
}

export function render(r: HostReport): string {
  const lines: string[] = [];
  lines.push(`user:              ${r.user.name} (uid ${r.user.uid}, gid ${r.user.gid})${r.user.rootless ? ', rootless' : ', root'}`);
  lines.push('runtimes:');
  if (r.runtimes.length === 0) lines.push('  none found');
  for (const rt of r.runtimes) {
    const f = rt.features ? ` features: oci ${rt.features.ociVersionMin ?? '?'}..${rt.features.ociVersionMax ?? '?'}` : ' (no features command)';
    const mark = rt.name === r.defaultRuntime ? ' [default]' : '';
    lines.push(`  ${rt.name} ${rt.version} ${rt.path}${mark}${f}${rt.usable ? '' : ` (unusable: ${rt.problem?.message ?? ''})`}`);
  }
  const ns = r.userNamespaces;
  lines.push(`user namespaces:   ${ns.allowed ? 'allowed' : 'NOT allowed'}${ns.maxUserNamespaces !== undefined ? ` (max ${ns.maxUserNamespaces})` : ''}`);
  lines.push(`newuidmap:         ${ns.newuidmap ?? 'not found'}; newgidmap: ${ns.newgidmap ?? 'not found'}`);
  if (r.user.rootless) lines.push(`subuid:            ${ranges(r.subuid)}; subgid: ${ranges(r.subgid)}`);
  const cg = r.cgroup;
  lines.push(`cgroups:           ${cg.version === 'hybrid' ? 'v1+v2 hybrid' : `v${cg.version}`}${cg.ownPath ? ` (own cgroup ${cg.ownPath})` : ''}`);
  lines.push(`limits:            ${cg.canManage ? `enforced (${cg.controllers.join(', ')})${cg.parent ? `, in cgroups under ${cg.parent}` : ''}` : 'cannot be enforced'}`);
  lines.push(`store:             ${r.store}`);
  lines.push(`state:             ${r.state}`);
  if (r.problems.length > 0) {
    lines.push('problems:');
    for (const p of r.problems) lines.push(`  - ${p.message}${p.fix ? `\n    fix: ${p.fix}` : ''}`);
  } else lines.push('problems:          none');
  return lines.join('\n');
}
