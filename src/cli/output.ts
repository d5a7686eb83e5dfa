import { S2nError, isS2nError } from '../errors.js';

/** Where a command writes: stdout carries only results, stderr everything else. */
export interface Output {
  json: boolean;
  debug: boolean;
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

/** A stderr that swallows everything (--quiet progress). */
export const nullStream = { write: () => true, isTTY: false } as unknown as NodeJS.WritableStream;

export function result(out: Output, text: string): void {
  out.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function info(out: Output, text: string): void {
  if (!out.json) out.stderr.write(`${text}\n`);
}

export function warn(out: Output, text: string): void {
  if (out.json) out.stderr.write(`${JSON.stringify({ type: 'warning', message: text })}\n`);
  else out.stderr.write(`warning: ${text}\n`);
}

/** Runner errors exit 125, like docker and podman. */
export const EXIT_RUNNER_ERROR = 125;

/**
 * One clear line plus a hint; --debug adds context and stack; --json one JSON
 * object. Returns the exit status: 125, or the 126/127 an error carries in
 * `context.exitStatus` (a command that cannot be executed or found).
 */
export function reportError(out: Output, e: unknown): number {
  const err = isS2nError(e) ? e : internalError(e);
  if (out.json) {
    out.stderr.write(
      `${JSON.stringify({ type: 'error', code: err.code, message: err.message, hint: err.hint, context: jsonSafe(err.context) })}\n`,
    );
  } else {
    out.stderr.write(`Error: ${err.message}\n`);
    if (err.hint) out.stderr.write(`hint: ${err.hint}\n`);
  }
  if (out.debug) {
    if (Object.keys(err.context).length > 0) out.stderr.write(`context: ${JSON.stringify(jsonSafe(err.context))}\n`);
    out.stderr.write(`${err.stack ?? ''}\n`);
    let cause: unknown = err.cause;
    while (cause instanceof Error) {
      out.stderr.write(`caused by: ${cause.stack ?? cause.message}\n`);
      cause = cause.cause;
    }
  }
  const status = err.context.exitStatus;
  return typeof status === 'number' && Number.isInteger(status) && status > 0 && status < 256 ? status : EXIT_RUNNER_ERROR;
}

function internalError(e: unknown): S2nError {
  const msg = e instanceof Error ? e.message : String(e);
  const err = new S2nError('EINTERNAL', `internal error: ${msg}`, {
    hint: 'this is a bug in s2n-oci; run again with --debug and report the output',
    cause: e,
  });
  if (e instanceof Error && e.stack) err.stack = e.stack;
  return err;
}

function jsonSafe(ctx: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(ctx, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as Record<string, unknown>;
}

/** Pads columns for a plain table (docker-style: two spaces between columns). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd((widths[i] ?? 0) + 2))).join('').trimEnd())
    .join('\n');
}

export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function shortDigest(d: string): string {
  const hex = d.includes(':') ? d.slice(d.indexOf(':') + 1) : d;
  return hex.slice(0, 12);
}
