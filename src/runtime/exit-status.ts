/**
 * Exit status of `s2n-oci run`, as docker and podman report it: the
 * container's own code; 128+N when killed by signal N; 125 when s2n-oci or
 * the runtime failed; 126 when the command cannot be executed; 127 when it
 * cannot be found.
 */
import { constants } from 'node:os';
import { readFile } from 'node:fs/promises';
import { S2nError, isS2nError, type ErrorCode } from '../errors.js';

export const EXIT_RUNNER = 125;
export const EXIT_CANNOT_EXECUTE = 126;
export const EXIT_NOT_FOUND = 127;

/** Code of errors reported by the runtime itself (until errors.ts has an ERUNTIME). */
export const RUNTIME_ERROR_CODE: ErrorCode = 'EINTERNAL';

/** The status to exit with for an error thrown by the driver: 126/127 when set on it, else 125. */
export function exitStatusOf(e: unknown): number {
  if (isS2nError(e) && typeof e.context.exitStatus === 'number') return e.context.exitStatus;
  return EXIT_RUNNER;
}

export function signalNumber(sig: NodeJS.Signals | string): number | undefined {
  const name = (sig.startsWith('SIG') ? sig : `SIG${sig}`) as NodeJS.Signals;
  return (constants.signals as Record<string, number>)[name];
}

/** Status for a runtime process that ended with `code` or `signal`. */
export function statusFromExit(code: number | null, signal: NodeJS.Signals | string | null): number {
  if (code !== null) return code;
  if (signal !== null) return 128 + (signalNumber(signal) ?? 0);
  return EXIT_RUNNER;
}

/** Error entries of a runtime --log file in JSON format (runc: msg/level; crun: same keys). */
export async function runtimeLogErrors(logFile: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(logFile, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const e = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if ((e.level === 'error' || e.level === 'fatal') && typeof e.msg === 'string') out.push(e.msg);
    } catch {
      out.push(line.trim());
    }
  }
  return out;
}

/**
 * The error for a runtime that failed with `messages` (its log): 127 for a
 * command not found, 126 for one that cannot be executed, else 125.
 */
export function classifyRuntimeFailure(messages: readonly string[], runtime: string, argv0?: string): S2nError {
  const msg = messages[messages.length - 1] ?? `${runtime} failed without a message`;
  const cmd = argv0 ?? /exec(?:utable file)?:? [`"]([^`"]+)[`"]/.exec(msg)?.[1] ?? 'command';
  if (/executable file .*not found|exec: .*no such file or directory|exec(?:vp?)? .*: No such file or directory|^open executable: No such file/i.test(msg)) {
    return new S2nError('EUSAGE', `run container: ${cmd}: executable file not found in $PATH`, {
      hint: 'check the command and the image (is the program installed in it? is PATH right?)',
      context: { exitStatus: EXIT_NOT_FOUND, runtime, runtimeMessage: msg },
    });
  }
  if (/exec: .*permission denied|open executable: permission denied|exec.*: Permission denied|exec format error/i.test(msg)) {
    return new S2nError('EUSAGE', `run container: ${cmd}: ${/exec format error/i.test(msg) ? 'exec format error' : 'permission denied'}`, {
      hint: 'the file is not executable in the image (mode bits, directory, or wrong architecture)',
      context: { exitStatus: EXIT_CANNOT_EXECUTE, runtime, runtimeMessage: msg },
    });
  }
  const cgroupHybrid = /hybrid mode not supported/i.test(msg);
  return new S2nError(RUNTIME_ERROR_CODE, `run container: ${runtime}: ${msg}`, {
    hint: cgroupHybrid
      ? 'crun does not support cgroup v1+v2 hybrid hosts: use --runtime runc, or boot with systemd.unified_cgroup_hierarchy=1'
      : 'the OCI runtime refused the container; run with --debug for its log, or try the other runtime with --runtime',
    context: { exitStatus: EXIT_RUNNER, runtime, runtimeMessages: messages.slice(-10) },
  });
}
