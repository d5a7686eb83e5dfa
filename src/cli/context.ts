import type { Command } from 'commander';
import { defaultStoreRoot, ContentStore } from '../store/store.js';
import { recordCommandRan } from './process-facts.js';
import { reportError, type Output } from './output.js';

export interface GlobalOptions {
  root?: string;
  debug?: boolean;
  json?: boolean;
}

export interface CommandContext {
  out: Output;
  /** The store, opened on first use (commands like `login` never touch it). */
  store(): Promise<ContentStore>;
  storeRoot: string;
}

export function makeContext(cmd: Command): CommandContext {
  const o = cmd.optsWithGlobals<GlobalOptions>();
  // Getters: process.stdout/stderr are made on first use (a `run` that prints nothing never makes them).
  const out: Output = {
    json: o.json === true,
    debug: o.debug === true,
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
  };
  const storeRoot = o.root ?? defaultStoreRoot();
  let opened: Promise<ContentStore> | undefined;
  return { out, storeRoot, store: () => (opened ??= ContentStore.open(storeRoot)) };
}

/**
 * Wraps a command body: builds its context, turns any error into one clear line
 * and exit status 125, and leaves the command's own status otherwise.
 */
export function action<A extends unknown[]>(
  body: (ctx: CommandContext, ...args: A) => Promise<number | void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    recordCommandRan(cmd.name());
    const ctx = makeContext(cmd);
    try {
      const code = await body(ctx, ...(args.slice(0, -1) as A));
      process.exitCode = code ?? 0;
    } catch (e) {
      process.exitCode = reportError(ctx.out, e);
    }
  };
}
