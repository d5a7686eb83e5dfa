/**
 * The command line, loaded lazily: a command's module (and what it imports:
 * undici, the store, the copy engine) is imported only when that command
 * runs, so `--help` or `images` pay for none of the others. The root help
 * lists the commands from the cheap descriptions below;
 * test/cli/commands.test.ts checks they match the real definitions.
 */
import * as commander from 'commander';
import type { Command } from 'commander';

/** The one commander instance (bundled into bundle.cjs with the rest of the CLI). */
export { commander };

export type Register = (program: Command) => void;

export interface LazyCommand {
  name: string;
  aliases?: string[];
  /** What follows the name in the root help: `[options] <reference>`. */
  usage: string;
  description: string;
  load: () => Promise<Register>;
}

export const COMMANDS: readonly LazyCommand[] = [
  {
    name: 'run',
    usage: '[options] <image> [command...]',
    description: 'run a command in a new container from an image (pulled when missing)',
    load: async () => (await import('./run.js')).registerRun,
  },
  {
    name: 'scan',
    usage: '[options] [scanner-args...]',
    description: "run the s2n scanner image against a target; the scanner's own arguments pass through",
    load: async () => (await import('./scan.js')).registerScan,
  },
  {
    name: 'pull',
    usage: '[options] <reference>',
    description: 'pull an image from a registry into the store',
    load: async () => (await import('./pull.js')).registerPull,
  },
  {
    name: 'load',
    usage: '[options] [image]',
    description: 'load images from a docker save or OCI archive, or an OCI layout directory, into the store',
    load: async () => (await import('./load.js')).registerLoad,
  },
  {
    name: 'save',
    usage: '[options] <image...>',
    description: 'save images from the store to a docker-archive or oci-archive tar',
    load: async () => (await import('./save.js')).registerSave,
  },
  {
    name: 'copy',
    usage: '[options] <source> <destination>',
    description: 'copy an image between registries, archives, OCI layouts and the store',
    load: async () => (await import('./copy.js')).registerCopy,
  },
  {
    name: 'images',
    aliases: ['ls'],
    usage: '[options]',
    description: 'list images in the store',
    load: async () => (await import('./images.js')).registerImages,
  },
  {
    name: 'inspect',
    usage: '<image...>',
    description: 'show an image: names, digests, platform, manifest and config (JSON)',
    load: async () => (await import('./inspect.js')).registerInspect,
  },
  {
    name: 'rmi',
    usage: '[options] <image...>',
    description: 'remove images from the store (their blobs go unless another image shares them)',
    load: async () => (await import('./rmi.js')).registerRmi,
  },
  {
    name: 'prune',
    usage: '[options]',
    description: 'remove blobs no image refers to, and leftovers of interrupted pulls',
    load: async () => (await import('./prune.js')).registerPrune,
  },
  {
    name: 'login',
    usage: '[options] <registry>',
    description: 'check credentials against a registry and store them (auth.json or a credential helper)',
    load: async () => (await import('./login.js')).registerLogin,
  },
  {
    name: 'logout',
    usage: '[options] <registry>',
    description: 'remove stored credentials for a registry',
    load: async () => (await import('./login.js')).registerLogout,
  },
  {
    name: 'unpack',
    aliases: ['bundle'],
    usage: '[options] <image> <dir>',
    description: 'unpack an image into an OCI bundle directory (rootfs + config.json), like umoci unpack',
    load: async () => (await import('./unpack.js')).registerUnpack,
  },
  {
    name: 'info',
    usage: '[options]',
    description: 'show what this host offers for running containers, and how to fix what is missing',
    load: async () => (await import('./info.js')).registerInfo,
  },
  {
    name: 'ps',
    usage: '[options]',
    description: 'list containers (running ones; -a for all)',
    load: async () => (await import('./ps.js')).registerPs,
  },
  {
    name: 'logs',
    usage: '[options] <container>',
    description: 'print the output of a detached container',
    load: async () => (await import('./logs.js')).registerLogs,
  },
  {
    name: 'stop',
    usage: '[options] <container...>',
    description: 'stop containers: their StopSignal, then SIGKILL after a timeout',
    load: async () => (await import('./stop.js')).registerStop,
  },
  {
    name: 'kill',
    usage: '[options] <container...>',
    description: 'send a signal to running containers (default SIGKILL)',
    load: async () => (await import('./kill.js')).registerKill,
  },
  {
    name: 'rm',
    usage: '[options] <container...>',
    description: 'remove containers (their state, bundle and log)',
    load: async () => (await import('./rm.js')).registerRm,
  },
];

/** The root command with its global options and no subcommands. */
export function rootCommand(): Command {
  return new commander.Command('s2n-oci')
    .description('Pull and run OCI images without a daemon or root')
    .version('0.1.0')
    .option('--root <dir>', 'store location (default $S2N_OCI_ROOT, ~/.local/share/s2n-oci, /var/lib/s2n-oci as root)')
    .option('--debug', 'print error context and stack traces')
    .showHelpAfterError('(run with --help for usage)')
    // Options after `run IMAGE` belong to the container's command, as in docker.
    .enablePositionalOptions()
    .exitOverride();
}

/**
 * The command `args` (argv without node and script) names, found as
 * commander will: the first operand that is not the value of a global
 * option; for `help NAME`, NAME.
 */
export function invokedCommand(program: Command, args: readonly string[]): string | undefined {
  const takesValue = new Set(program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short]));
  const operands: string[] = [];
  for (let i = 0; i < args.length && operands.length < 2; i++) {
    const a = args[i] ?? '';
    if (a === '--') {
      operands.push(...args.slice(i + 1, i + 3));
      break;
    }
    if (a.startsWith('-') && a !== '-') {
      if (takesValue.has(a)) i++;
      continue;
    }
    operands.push(a);
  }
  return operands[0] === 'help' ? operands[1] : operands[0];
}

/**
 * The program for `argv`: the invoked command fully defined, every other one
 * only named and described (enough for the root help, "unknown command"
 * suggestions and `help`). `everything` loads them all (tests).
 */
export async function buildProgram(argv: readonly string[], o: { everything?: boolean } = {}): Promise<Command> {
  const program = rootCommand();
  const wanted = invokedCommand(program, argv.slice(2));
  const stubs = new Map<Command, LazyCommand>();
  for (const c of COMMANDS) {
    if (o.everything || c.name === wanted || c.aliases?.includes(wanted ?? '')) {
      (await c.load())(program);
    } else {
      const stub = program.command(c.name).description(c.description);
      for (const a of c.aliases ?? []) stub.alias(a);
      stubs.set(stub, c);
    }
  }
  // A stub has no arguments or options of its own; the root help shows its declared usage instead.
  const help = new commander.Help();
  program.configureHelp({
    subcommandTerm: (cmd) => {
      const c = stubs.get(cmd);
      return c === undefined ? help.subcommandTerm(cmd) : [[c.name, ...(c.aliases ?? []).slice(0, 1)].join('|'), c.usage].filter(Boolean).join(' ');
    },
  });
  return program;
}
