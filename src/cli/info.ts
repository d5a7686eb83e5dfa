import type { Command } from 'commander';
import { accessSync, constants } from 'node:fs';
import { dirname } from 'node:path';
import { hostReport, type HostReport } from '../runtime/host-report.js';
import { action } from './context.js';
import { result } from './output.js';
import { launchFacts, type LaunchFacts } from './process-facts.js';

/** How this s2n-oci starts: the bundle and its code cache, or tsc's modules. */
export interface StartupReport {
  bundled: boolean;
  codeCache?: LaunchFacts['codeCache'];
  cachePath?: string;
  /** Whether this user may rewrite the cache (a rejected one is rewritten on exit). */
  cacheWritable?: boolean;
}

export function startupReport(launch: LaunchFacts | undefined = launchFacts()): StartupReport {
  if (launch === undefined) return { bundled: false };
  let cacheWritable = true;
  try {
    accessSync(dirname(launch.cachePath), constants.W_OK);
  } catch {
    cacheWritable = false;
  }
  return { bundled: true, codeCache: launch.codeCache, cachePath: launch.cachePath, cacheWritable };
}

/** A cache V8 refuses and this user cannot replace: every start compiles the whole CLI. */
function startupProblem(s: StartupReport): HostReport['problems'][number] | undefined {
  if (!s.bundled || s.codeCache === 'accepted' || s.cacheWritable) return undefined;
  return {
    message: `the code cache ${s.cachePath ?? ''} ${s.codeCache === 'rejected' ? 'was built for another Node.js version or flags' : 'is missing'} and this user cannot write it: every start compiles the CLI (~20 ms slower)`,
    fix: `run \`s2n-oci --version\` once as the owner of ${s.cachePath ? dirname(s.cachePath) : 'the installation'}`,
  };
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show what this host offers for running containers, and how to fix what is missing')
    .option('--json', 'print a JSON object')
    .action(
      action(async (ctx) => {
        const host = await hostReport({ storeRoot: ctx.storeRoot });
        const startup = startupReport();
        const problem = startupProblem(startup);
        const r = { ...host, startup, problems: problem ? [...host.problems, problem] : host.problems };
        result(ctx.out, ctx.out.json ? JSON.stringify(r, null, 2) : render(r));
      }),
    );
}

function ranges(rs: HostReport['subuid']): string {
  return rs.length === 0 ? 'none' : rs.map((r) => `${r.start}:${r.count}`).join(', ');
}

export function render(r: HostReport & { startup?: StartupReport }): string {
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
  if (r.startup) {
    const s = r.startup;
    lines.push(`start-up:          ${s.bundled ? `one bundle, code cache ${s.codeCache ?? 'none'}` : 'tsc modules (node dist/src/cli/main.js)'}`);
  }
  if (r.problems.length > 0) {
    lines.push('problems:');
    for (const p of r.problems) lines.push(`  - ${p.message}${p.fix ? `\n    fix: ${p.fix}` : ''}`);
  } else lines.push('problems:          none');
  return lines.join('\n');
}
