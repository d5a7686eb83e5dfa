import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { S2nError } from '../errors.js';
import { login, logout } from '../sources/registry/credentials.js';
import { createRegistryClient } from '../sources/registry/client.js';
import { action } from './context.js';
import { info, result } from './output.js';

interface LoginFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  authfile?: string;
}

export function registerLogin(program: Command): void {
  program
    .command('login')
    .description('check credentials against a registry and store them (auth.json or a credential helper)')
    .argument('<registry>', 'registry host[:port], e.g. ghcr.io')
    .option('-u, --username <name>', 'user name')
    .option('-p, --password <password>', 'password or token (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--authfile <file>', 'auth file to write (default $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.docker/config.json)')
    .action(
      action(async (ctx, registry: string, flags: LoginFlags) => {
        const username = flags.username ?? (await prompt('Username: ', false));
        const password = flags.passwordStdin ? (await readAll(process.stdin)).replace(/\r?\n$/, '') : (flags.password ?? (await prompt('Password: ', true)));
        if (!username || !password) {
          throw new S2nError('EUSAGE', `log in to ${registry}: user name and password are required`, {
            hint: 'pass -u USER and --password-stdin (or -p)',
          });
        }
        const client = createRegistryClient(registry, { credentials: async () => ({ username, password }), mirrors: false });
        try {
          await client.ping();
        } finally {
          await client.close();
        }
        const opts = flags.authfile ? { file: flags.authfile } : {};
        const { where } = await login(registry, username, password, opts);
        info(ctx.out, `credentials stored in ${where}`);
        result(ctx.out, 'Login Succeeded!');
      }),
    );
}

export function registerLogout(program: Command): void {
  program
    .command('logout')
    .description('remove stored credentials for a registry')
    .argument('<registry>', 'registry host[:port]')
    .option('--authfile <file>', 'auth file to edit')
    .action(
      action(async (ctx, registry: string, flags: { authfile?: string }) => {
        const { removed } = await logout(registry, flags.authfile ? { file: flags.authfile } : {});
        if (removed.length === 0) {
          throw new S2nError('ECREDENTIALS', `log out of ${registry}: not logged in`, { hint: 'no stored credentials matched that registry' });
        }
        info(ctx.out, `removed credentials from ${removed.join(', ')}`);
        result(ctx.out, `Removed login credentials for ${registry}`);
      }),
    );
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

/** Asks on the terminal; without one there is nobody to ask. */
async function prompt(question: string, secret: boolean): Promise<string> {
  if (!process.stdin.isTTY) return '';
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (secret) {
    // Echo nothing while the password is typed.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
      if (s.includes(question)) process.stderr.write(question);
    };
  }
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
    if (secret) process.stderr.write('\n');
  }
}
