/** Docker's rules for the process: Entrypoint + Cmd, and the environment. */
import { S2nError } from '../errors.js';
import type { ContainerConfig } from '../oci/types.js';
import { parseEnvFile, type RunOptions } from './options.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * `--entrypoint X` replaces the image Entrypoint and drops its Cmd
 * (`--entrypoint ''` leaves neither); a command after REF replaces Cmd.
 */
export function processArgs(image: ContainerConfig, options: RunOptions, imageRef: string): string[] {
  const override = options.entrypoint;
  const entrypoint = override === undefined ? (image.Entrypoint ?? []) : override === '' ? [] : [override];
  const given = options.command ?? [];
  const cmd = given.length > 0 ? given : override === undefined ? (image.Cmd ?? []) : [];
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) {
    throw new S2nError('EUSAGE', `run ${imageRef}: no command specified`, {
      hint: 'the image has no Entrypoint or Cmd: give a command after the image name, or --entrypoint',
      context: { image: imageRef },
    });
  }
  return args;
}

/** An ordered NAME=VALUE list where a later value replaces an earlier one in place. */
class EnvList {
  private readonly vars = new Map<string, string>();
  set(entry: string): void {
    const eq = entry.indexOf('=');
    if (eq <= 0) return;
    this.vars.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  has(name: string): boolean {
    return this.vars.has(name);
  }
  list(): string[] {
    return [...this.vars].map(([k, v]) => `${k}=${v}`);
  }
}

/**
 * Image Env, then the profile's, then each --env-file, then -e; then PATH,
 * HOSTNAME, HOME (and TERM with a terminal) when still unset. Bare NAMEs in
 * -e and env files come from `callerEnv` and are skipped when unset there.
 */
export function processEnv(
  image: ContainerConfig,
  profileEnv: readonly string[],
  options: RunOptions,
  ctx: { hostname: string; home: string },
): string[] {
  const env = new EnvList();
  const fromCaller = (name: string): void => {
    const v = options.callerEnv?.[name];
    if (v !== undefined) env.set(`${name}=${v}`);
  };
  for (const e of image.Env ?? []) env.set(e);
  for (const e of profileEnv) env.set(e);
  (options.envFiles ?? []).forEach((text, i) => {
    const parsed = parseEnvFile(text, `--env-file #${i + 1}`);
    for (const e of parsed.env) env.set(e);
    for (const n of parsed.names) fromCaller(n);
  });
  for (const e of options.env ?? []) {
    if (e.startsWith('=') || e === '') {
      throw new S2nError('EUSAGE', `parse -e ${JSON.stringify(e)}: expected NAME=VALUE`, { hint: 'write -e NAME=VALUE, or -e NAME to pass NAME from your environment' });
    }
    if (e.includes('=')) env.set(e);
    else fromCaller(e);
  }
  const out = env.list();
  if (!env.has('PATH')) out.unshift(`PATH=${DEFAULT_PATH}`);
  if (!env.has('HOSTNAME')) out.push(`HOSTNAME=${ctx.hostname}`);
  if (!env.has('HOME')) out.push(`HOME=${ctx.home}`);
  if (options.tty === true && !env.has('TERM')) out.push('TERM=xterm');
  return out;
}
