/**
 * Running a program inside a user namespace that maps ids exactly as an
 * IdPlan says, so that chown to image uids inside lands on the user's
 * subordinate ids outside (and rm can remove such files again).
 *
 * `unshare --user --map-root-user --map-users=H,1,N --map-groups=H,1,N`
 * (util-linux ≥ 2.38) maps container 0 → the user itself and 1..N → the
 * subordinate range through newuidmap/newgidmap, which is the plan's shape.
 * `--map-auto` is not used: it maps one id less than the range (65535), and
 * the runtime config must see the very same map as the rootfs. The worker
 * checks /proc/self/uid_map against the plan before it writes anything.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { S2nError } from '../errors.js';
import type { IdMapping, IdPlan } from './types.js';

export interface UserNamespaceOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  stdio?: StdioOptions;
  /** The unshare program; default `unshare` from PATH. */
  unshare?: string;
  spawn?: typeof spawn;
}

function planError(plan: IdPlan, why: string): S2nError {
  return new S2nError('EINTERNAL', `enter user namespace: ${why}`, {
    hint: 'this id plan cannot be set up with unshare; check /etc/subuid and /etc/subgid',
    context: { plan },
  });
}

/** The `--map-users`/`--map-groups` value for the plan's one subordinate range. */
function rangeArg(plan: IdPlan, maps: readonly IdMapping[], hostId: number, what: string): string | undefined {
  const root = maps.find((m) => m.containerID === 0);
  if (root === undefined || root.size !== 1 || root.hostID !== hostId) throw planError(plan, `the ${what} mapping of container 0 is not this process's own id ${hostId}`);
  const rest = maps.filter((m) => m !== root);
  if (rest.length > 1) throw planError(plan, `more than one subordinate ${what} range`);
  const r = rest[0];
  return r === undefined ? undefined : `${r.hostID},${r.containerID},${r.size}`;
}

/** The argv prefix (program first) that runs a command under `plan`; empty for 'root' (no namespace). */
export function userNamespaceArgv(plan: IdPlan, ids: { euid: number; egid: number } = { euid: process.geteuid?.() ?? 0, egid: process.getegid?.() ?? 0 }, unshare = 'unshare'): string[] {
  if (plan.mode === 'root') {
    if (ids.euid !== 0) throw planError(plan, "the plan is for root, but this process's uid is not 0");
    return [];
  }
  const users = rangeArg(plan, plan.uidMappings, ids.euid, 'uid');
  const groups = rangeArg(plan, plan.gidMappings, ids.egid, 'gid');
  if (plan.mode === 'subid' && (users === undefined || groups === undefined)) throw planError(plan, "a 'subid' plan needs a subordinate uid and gid range");
  return [
    unshare,
    '--user',
    '--map-root-user',
    ...(users !== undefined ? [`--map-users=${users}`] : []),
    ...(groups !== undefined ? [`--map-groups=${groups}`] : []),
    '--',
  ];
}

/** Starts `command args` inside a user namespace mapped as `plan` says ('root': directly). */
export function spawnInUserNamespace(plan: IdPlan, command: string, args: readonly string[], opts: UserNamespaceOptions = {}): ChildProcess {
  const prefix = userNamespaceArgv(plan, undefined, opts.unshare);
  const argv = [...prefix, command, ...args];
  const [cmd, ...rest] = argv as [string, ...string[]];
  return (opts.spawn ?? spawn)(cmd, rest, {
    stdio: opts.stdio ?? ['pipe', 'pipe', 'pipe'],
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args` to completion inside the namespace, collecting its output (for small outputs: rm, cat). */
export async function runInUserNamespace(
  plan: IdPlan,
  command: string,
  args: readonly string[],
  opts: UserNamespaceOptions & { input?: string | Buffer } = {},
): Promise<RunResult> {
  const child = spawnInUserNamespace(plan, command, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 64 * 1024) stderr += s;
  });
  child.stdin?.on('error', () => {});
  child.stdin?.end(opts.input ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', (e) =>
      reject(
        new S2nError('EINTERNAL', `enter user namespace: cannot start ${command} (${e.message})`, {
          hint: 'install util-linux (unshare) and uidmap (newuidmap, newgidmap)',
          cause: e,
        }),
      ),
    );
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
