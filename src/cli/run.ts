import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { parsePullPolicy } from '../ensure-image.js';
import { S2nError } from '../errors.js';
import { runImage } from '../run.js';
import { loadProfile } from '../runtime-spec/load-profile.js';
import {
  parseCpus,
  parseKeyValue,
  parseMemory,
  parseMountSpec,
  parseNetwork,
  parsePidsLimit,
  parseTmpfs,
  parseUlimit,
  parseVolume,
  type MountSpec,
  type RunOptions,
} from '../runtime-spec/options.js';
import type { Profile } from '../runtime-spec/profile.js';
import { commander } from './commands.js';
import { action } from './context.js';
import { result } from './output.js';

/** The package's bundles/ folder (profiles, the demo scanner), from dist/src/cli/ or src/cli/. */
export const BUNDLES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', ...(import.meta.url.includes('/dist/') ? ['..'] : []), 'bundles');

export interface RunFlags {
  env: string[];
  envFile: string[];
  volume: string[];
  mount: string[];
  tmpfs: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  hostname?: string;
  name?: string;
  rm?: boolean;
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  network?: string;
  readOnly?: string | boolean;
  capAdd: string[];
  capDrop: string[];
  privileged?: boolean;
  ulimit: string[];
  memory?: string;
  cpus?: string;
  pidsLimit?: string;
  securityOpt: string[];
  annotation: string[];
  label: string[];
  pull: string;
  platform?: string;
  runtime?: string;
  profile?: string;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The options `run` and `scan` share: everything that shapes the container. */
export function addContainerOptions(cmd: Command): Command {
  return cmd
    .option('-e, --env <NAME[=VALUE]>', 'set an environment variable (repeatable); NAME alone takes it from this environment', collect, [])
    .option('--env-file <file>', 'read NAME=VALUE lines from a file (repeatable)', collect, [])
    .option('-v, --volume <host:ctr[:ro|rw]>', 'bind-mount a host path (repeatable)', collect, [])
    .option('--mount <type=bind|tmpfs,...>', 'attach a mount, docker syntax (repeatable)', collect, [])
    .option('--tmpfs <path[:opts]>', 'mount a tmpfs (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user to run as: name or uid, optionally :group or :gid')
    .option('--hostname <name>', 'container host name')
    .option('--network <mode>', 'host (default: the scanner must reach its targets) or none (loopback only)')
    .addOption(new commander.Option('--read-only [bool]', 'read-only root filesystem (default true; --read-only=false gives a private writable copy)'))
    .option('--cap-add <cap>', 'add a capability, or ALL (repeatable)', collect, [])
    .option('--cap-drop <cap>', 'drop a capability, or ALL (repeatable)', collect, [])
    .option('--privileged', 'all capabilities, no seccomp, no masked paths (root only)')
    .option('--ulimit <name=soft[:hard]>', 'set a resource limit, e.g. nofile=1024:2048 (repeatable)', collect, [])
    .option('-m, --memory <bytes>', 'memory limit, e.g. 512m (needs cgroup control)')
    .option('--cpus <n>', 'CPU limit, e.g. 1.5 (needs cgroup control)')
    .option('--pids-limit <n>', 'process limit (needs cgroup control)')
    .option('--security-opt <opt>', 'no-new-privileges[=false] or seccomp=unconfined (repeatable)', collect, [])
    .option('--annotation <key=value>', 'add an annotation to the runtime config (repeatable)', collect, [])
    .option('--label <key=value>', 'add a label (recorded as an annotation; repeatable)', collect, [])
    .option('--pull <policy>', 'missing (default), always or never', 'missing')
    .option('--platform <os/arch[/variant]>', 'platform to pull (default: this host)')
    .option('--runtime <name|path>', 'crun or runc, or a path (default: $S2N_OCI_RUNTIME, then crun, then runc)')
    .option('--profile <name>', 'run profile from bundles/profiles (prod, dev) or default');
}

function parseBool(v: string | boolean | undefined, flag: string): boolean | undefined {
  if (v === undefined || typeof v === 'boolean') return v;
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new S2nError('EUSAGE', `${flag}=${v}: not true or false`, { hint: `use ${flag}=true or ${flag}=false` });
}

/** Command-line flags → RunOptions (parsers throw EUSAGE naming the flag). */
export async function runOptionsFrom(flags: RunFlags, command: string[], cwd = process.cwd()): Promise<RunOptions> {
  const mounts: MountSpec[] = [
    ...flags.volume.map((v) => parseVolume(v, cwd)),
    ...flags.mount.map((m) => parseMountSpec(m, cwd)),
    ...flags.tmpfs.map((t) => parseTmpfs(t)),
  ];
  const envFiles: string[] = [];
  for (const f of flags.envFile) {
    try {
      envFiles.push(await readFile(f, 'utf8'));
    } catch (e) {
      throw new S2nError('EUSAGE', `--env-file ${f}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
        hint: 'give the path of a readable file of NAME=VALUE lines',
        context: { path: f },
      });
    }
  }
  let noNewPrivileges: boolean | undefined;
  let seccomp: boolean | undefined;
  for (const o of flags.securityOpt) {
    const [k, v] = o.includes('=') ? [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)] : [o, 'true'];
    if (k === 'no-new-privileges') noNewPrivileges = parseBool(v, '--security-opt no-new-privileges');
    else if (k === 'seccomp' && v === 'unconfined') seccomp = false;
    else {
      throw new S2nError('EUSAGE', `--security-opt ${o}: not supported`, { hint: 'supported: no-new-privileges[=true|false], seccomp=unconfined' });
    }
  }
  const readOnly = flags.readOnly === true ? true : parseBool(flags.readOnly, '--read-only');
  return {
    ...(flags.entrypoint !== undefined ? { entrypoint: flags.entrypoint } : {}),
    ...(command.length > 0 ? { command } : {}),
    env: flags.env,
    envFiles,
    callerEnv: process.env,
    ...(flags.workdir !== undefined ? { workdir: flags.workdir } : {}),
    ...(flags.user !== undefined ? { user: flags.user } : {}),
    ...(flags.hostname !== undefined ? { hostname: flags.hostname } : {}),
    ...(readOnly !== undefined ? { readOnly } : {}),
    mounts,
    ...(flags.network !== undefined ? { network: parseNetwork(flags.network) } : {}),
    capAdd: flags.capAdd,
    capDrop: flags.capDrop,
    ...(flags.privileged ? { privileged: true } : {}),
    ulimits: flags.ulimit.map(parseUlimit),
    ...(flags.memory !== undefined ? { memory: parseMemory(flags.memory) } : {}),
    ...(flags.cpus !== undefined ? { cpus: parseCpus(flags.cpus) } : {}),
    ...(flags.pidsLimit !== undefined ? { pidsLimit: parsePidsLimit(flags.pidsLimit) } : {}),
    ...(flags.tty ? { tty: true } : {}),
    ...(flags.interactive ? { interactive: true } : {}),
    ...(noNewPrivileges !== undefined ? { noNewPrivileges } : {}),
    ...(seccomp !== undefined ? { seccomp } : {}),
    annotations: Object.fromEntries(flags.annotation.map((a) => parseKeyValue(a, '--annotation'))),
    labels: Object.fromEntries(flags.label.map((a) => parseKeyValue(a, '--label'))),
  };
}

export function profileFrom(name: string | undefined): Profile {
  return loadProfile(name ?? 'default', BUNDLES_DIR);
}

export function registerRun(program: Command): void {
  const cmd = program
    .command('run')
    .description('run a command in a new container from an image (pulled when missing)')
    .argument('<image>', 'image reference or id')
    .argument('[command...]', 'command and arguments (default: the image Entrypoint and Cmd)')
    .option('--name <name>', 'name the container')
    .option('--rm', 'remove the container when it exits (the default in the foreground)')
    .option('-d, --detach', 'run in the background and print the container id')
    .option('-i, --interactive', 'keep stdin open and pass it to the container')
    .option('-t, --tty', 'allocate a pseudo-terminal')
    .option('--entrypoint <cmd>', 'override the image Entrypoint (and clear its Cmd); "" clears it')
    .passThroughOptions();
  addContainerOptions(cmd).action(
    action(async (ctx, image: string, command: string[], flags: RunFlags) => {
      if (flags.tty && !flags.interactive && process.stdin.isTTY !== true) {
        // docker allocates the terminal anyway; nothing to warn about.
      }
      const store = await ctx.store();
      const options = await runOptionsFrom(flags, command);
      const status = await runImage(
        store,
        {
          image,
          pull: parsePullPolicy(flags.pull),
          // Imported only with --platform: one module less on every other start.
          ...(flags.platform ? { platform: (await import('../oci/platform.js')).parsePlatform(flags.platform) } : {}),
          options,
          profile: profileFrom(flags.profile),
          ...(flags.runtime ? { runtime: flags.runtime } : {}),
          ...(flags.name ? { name: flags.name } : {}),
          detach: flags.detach === true,
          ...(flags.rm ? { rm: true } : {}),
          ...(flags.detach ? { onCreated: (id: string) => result(ctx.out, id) } : {}),
        },
        // No stdio streams: the runtime inherits fds 0-2, and the driver makes
        // process.stdin/stdout only when -i or -t needs them (~3 ms otherwise).
        { notice: (line) => ctx.out.stderr.write(`${line}\n`) },
      );
      return status;
    }),
  );
}
