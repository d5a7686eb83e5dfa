/**
 * Runs one container in the foreground (or hands it to a detached reaper)
 * and returns the exit status for s2n-oci.
 *
 * - Plain stdio: the runtime's `run` gets our file descriptors as they are
 *   (no copying), stdin only with -i. The runtime is put in its own process
 *   group so a terminal's Ctrl-C reaches s2n-oci once, and we forward it.
 * - -t: node-pty cannot receive a console fd over --console-socket (that
 *   needs SCM_RIGHTS), so the runtime itself runs inside a node-pty terminal
 *   with `terminal: true` and no console socket: it makes the container's
 *   console and proxies it to its own stdio, i.e. our pty. runc forwards
 *   SIGWINCH to the console; crun 1.8 does not, so for crun we also set the
 *   size on the container's terminal with `stty -F /proc/PID/fd/0`.
 * - Runtime failures are told apart from the container's own non-zero exit
 *   by the runtime's --log (JSON): error entries there mean the runtime failed.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { S2nError } from '../errors.js';
import { classifyRuntimeFailure, EXIT_RUNNER, runtimeLogErrors, signalNumber, statusFromExit } from './exit-status.js';
import type { OciRuntime } from './oci-runtime.js';
import { mark } from './timing.js';

export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

type Readable = NodeJS.ReadableStream & { fd?: number; isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
type Writable = NodeJS.WritableStream & { fd?: number; isTTY?: boolean; columns?: number; rows?: number };

/** The parts of node-pty's IPty we use (injected in tests). */
export interface PtyLike {
  pid: number;
  onData(cb: (d: string | Buffer) => void): unknown;
  onExit(cb: (e: { exitCode: number; signal?: number }) => void): unknown;
  write(d: string | Buffer): void;
  resize(cols: number, rows: number): void;
  kill(signal?: string): void;
}
export type PtySpawn = (file: string, args: string[], o: { cols: number; rows: number; cwd?: string; env: NodeJS.ProcessEnv }) => PtyLike;

export interface RunContainerOptions {
  runtime: OciRuntime;
  id: string;
  bundle: string;
  tty: boolean;
  interactive: boolean;
  detach: boolean;
  /** Runtime --log file (JSON); read to tell runtime failures from the container's exit. */
  runtimeLog: string;
  /** Written by the runtime once the container exists. */
  pidFile: string;
  /** Detached: the container's stdout+stderr. */
  logPath?: string;
  /** Detached: where the reaper writes the exit status. */
  exitPath?: string;
  /** Detached with --rm: the directory the reaper removes when the container has ended. */
  removeDir?: string;
  /** The command's argv[0], for error messages. */
  argv0?: string;
  /** Where signals to forward come from (process). */
  signals?: NodeJS.EventEmitter;
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  env?: NodeJS.ProcessEnv;
  /** Called with the container's pid once it exists (foreground), or the reaper's pid (detached). */
  onStarted?: (pid: number) => void;
  /** A one-line notice for the user (second Ctrl-C, …). */
  notice?: (line: string) => void;
  /** --rm: called after the container has gone, whichever way. */
  cleanup?: () => Promise<void>;
  ptySpawn?: PtySpawn;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function readPid(pidFile: string): Promise<number | undefined> {
  try {
    const n = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Resolves with the container pid once the pid file appears, or undefined
 * when the runtime ends first (`gone.done`, with `wake` called at that moment
 * so no poll interval is waited out after the exit).
 */
async function waitForPid(pidFile: string, gone: { done: boolean; wake?: () => void }): Promise<number | undefined> {
  for (let delay = 2; ; delay = Math.min(delay * 2, 25)) {
    const pid = await readPid(pidFile);
    if (pid !== undefined) return pid;
    if (gone.done) return readPid(pidFile);
    await new Promise<void>((res) => {
      const t = setTimeout(res, delay);
      gone.wake = () => {
        clearTimeout(t);
        res();
      };
    });
  }
}

function markDone(gone: { done: boolean; wake?: () => void }): void {
  gone.done = true;
  gone.wake?.();
}

export async function runContainer(o: RunContainerOptions): Promise<number> {
  if (o.detach) return startDetached(o);
  rmSync(o.pidFile, { force: true });
  rmSync(o.runtimeLog, { force: true });
  const signals = o.signals ?? process;
  const exited: { done: boolean; wake?: () => void } = { done: false };
  let pid: number | undefined;
  let interrupts = 0;
  let pending: Array<NodeJS.Signals | 'SIGKILL'> = [];

  const deliver = async (sig: NodeJS.Signals | 'SIGKILL'): Promise<void> => {
    try {
      await o.runtime.kill(o.id, sig);
    } catch {
      /* the container is already gone */
    }
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    const kill = sig === 'SIGINT' && ++interrupts >= 2;
    if (kill) o.notice?.('second interrupt: killing the container');
    const s = kill ? 'SIGKILL' : sig;
    // Before the container exists there is nothing to signal: it gets the signal as soon as it does.
    if (pid === undefined) pending.push(s);
    else void deliver(s);
  };
  const handlers = FORWARDED_SIGNALS.map((sig) => {
    const h = (): void => onSignal(sig);
    signals.on(sig, h);
    return [sig, h] as const;
  });

  const runtimeArgs = o.runtime.runArgs(o.id, o.bundle, { pidFile: o.pidFile, log: o.runtimeLog });
  try {
    const ended = o.tty ? runInPty(o, runtimeArgs, exited, () => pid) : runPlain(o, exited);
    const started = waitForPid(o.pidFile, exited).then((p) => {
      pid = p;
      if (p === undefined) return;
      // crun leaves the console at 0x0 unless the config has consoleSize: give it ours.
      if (o.tty && o.runtime.info.name === 'crun') {
        const out = o.stdout ?? (process.stdout as Writable);
        setTerminalSize(p, { cols: out.columns || 80, rows: out.rows || 24 });
      }
      o.onStarted?.(p);
      const queued = pending;
      pending = [];
      for (const s of queued) void deliver(s);
    });
    const { code, signal } = await ended;
    await started;
    const status = statusFromExit(code, signal);
    if (status !== 0) {
      const errors = await runtimeLogErrors(o.runtimeLog);
      // A container that never started, or a runtime that logged an error, is a runtime failure.
      if (errors.length > 0 || (pid === undefined && signal === null)) {
        throw classifyRuntimeFailure(errors, o.runtime.info.name, o.argv0);
      }
    }
    return status;
  } finally {
    for (const [sig, h] of handlers) signals.off(sig, h);
    if (o.cleanup) await o.cleanup();
  }
}

type Ended = Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

function fdOr(s: Readable | Writable | undefined, fallback: number): number | 'pipe' {
  if (s === undefined) return fallback;
  return typeof s.fd === 'number' ? s.fd : 'pipe';
}

function runPlain(o: RunContainerOptions, exited: { done: boolean; wake?: () => void }): Ended {
  // process.stdin is made only with -i: creating it costs ~3 ms (net/tty streams).
  const stdin = o.interactive ? (o.stdin ?? (process.stdin as Readable)) : undefined;
  // A terminal stdin is copied (not inherited): the runtime is in its own process group and would get SIGTTIN reading it.
  const inFd: number | 'pipe' | 'ignore' = stdin === undefined ? 'ignore' : stdin.isTTY ? 'pipe' : fdOr(stdin, 0);
  const stdio: StdioOptions = [inFd, fdOr(o.stdout, 1), fdOr(o.stderr, 2)];
  mark('runtime spawn');
  const child: ChildProcess = o.runtime.run(o.id, o.bundle, {
    stdio,
    detached: true,
    pidFile: o.pidFile,
    log: o.runtimeLog,
    ...(o.env ? { env: o.env } : {}),
  });
  if (inFd === 'pipe' && stdin !== undefined && child.stdin) {
    stdin.pipe(child.stdin);
    child.stdin.on('error', () => {});
  }
  if (stdio[1] === 'pipe' && child.stdout && o.stdout) child.stdout.pipe(o.stdout, { end: false });
  if (stdio[2] === 'pipe' && child.stderr && o.stderr) child.stderr.pipe(o.stderr, { end: false });
  return new Promise((res, rej) => {
    child.once('error', (e) => {
      markDone(exited);
      rej(new S2nError('EINTERNAL', `run ${o.runtime.info.path}: ${e.message}`, { cause: e, hint: 'check the runtime binary', context: { exitStatus: EXIT_RUNNER } }));
    });
    child.once('close', (code, signal) => {
      mark('runtime ended');
      markDone(exited);
      if (inFd === 'pipe') stdin?.unpipe();
      res({ code, signal });
    });
  });
}

async function loadPty(): Promise<PtySpawn> {
  // Loaded only for -t: its native module costs a few ms at start. require(), not import():
  // node-pty is CommonJS, and the CLI bundle runs in a vm.Script, which has no import().
  const { spawn: ptySpawn } = createRequire(import.meta.url)('node-pty') as typeof import('node-pty');
  return (file, args, o) => ptySpawn(file, args, { name: o.env.TERM ?? 'xterm', ...o, encoding: null }) as unknown as PtyLike;
}

function runInPty(o: RunContainerOptions, args: string[], exited: { done: boolean; wake?: () => void }, containerPid: () => number | undefined): Ended {
  const stdin = o.stdin ?? (process.stdin as Readable);
  const stdout = o.stdout ?? (process.stdout as Writable);
  return (async () => {
    const spawnPty = o.ptySpawn ?? (await loadPty());
    const size = (): { cols: number; rows: number } => ({ cols: stdout.columns || 80, rows: stdout.rows || 24 });
    await setConsoleSize(join(o.bundle, 'config.json'), size());
    const pty = spawnPty(o.runtime.info.path, args, { ...size(), env: o.env ?? process.env });
    const wasRaw = stdin.isTTY === true;
    if (wasRaw) stdin.setRawMode?.(true);
    const onInput = (d: string | Buffer): void => pty.write(d);
    if (o.interactive) {
      stdin.on('data', onInput);
      stdin.resume();
    }
    pty.onData((d) => stdout.write(d));
    const onResize = (): void => {
      const s = size();
      pty.resize(s.cols, s.rows);
      const p = containerPid();
      if (o.runtime.info.name === 'crun' && p !== undefined) setTerminalSize(p, s);
    };
    stdout.on('resize', onResize);
    try {
      const e = await new Promise<{ exitCode: number; signal?: number }>((res) => pty.onExit(res));
      // node-pty may deliver the last output just after the exit event.
      await sleep(20);
      markDone(exited);
      return e.signal ? { code: null, signal: (Object.entries(signalNames()).find(([, n]) => n === e.signal)?.[0] ?? 'SIGKILL') as NodeJS.Signals } : { code: e.exitCode, signal: null };
    } finally {
      stdout.off('resize', onResize);
      if (o.interactive) {
        stdin.off('data', onInput);
        stdin.pause();
      }
      if (wasRaw) stdin.setRawMode?.(false);
    }
  })();
}

function signalNames(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of FORWARDED_SIGNALS.concat(['SIGKILL', 'SIGPIPE', 'SIGABRT', 'SIGSEGV'])) out[s] = signalNumber(s) ?? 0;
  return out;
}

/**
 * The console starts at the size in the config (crun leaves it 0x0 without
 * one, and a resize that arrives after the command read it is too late), so
 * the bundle's config gets the terminal's size right before the start.
 */
async function setConsoleSize(configPath: string, s: { cols: number; rows: number }): Promise<void> {
  let cfg: { process?: { consoleSize?: { height: number; width: number } } };
  try {
    cfg = JSON.parse(await readFile(configPath, 'utf8')) as typeof cfg;
  } catch {
    return; // no readable config: the runtime will say so
  }
  if (cfg.process === undefined) return;
  cfg.process.consoleSize = { height: s.rows, width: s.cols };
  await writeFile(configPath, JSON.stringify(cfg));
}

/** crun does not resize the container's console: set the size on it directly (the pty slave is the container's fd 0). */
export function setTerminalSize(pid: number, s: { cols: number; rows: number }): void {
  execFile('stty', ['-F', `/proc/${pid}/fd/0`, 'rows', String(s.rows), 'cols', String(s.cols)], () => {});
}

/** True while `pid` is still the runtime's own process (before it execs the container's command). */
async function stillRuntime(pid: number, runtimePath: string): Promise<boolean> {
  try {
    const argv0 = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0')[0] ?? '';
    return basename(argv0) === basename(runtimePath) || argv0 === '/proc/self/exe';
  } catch {
    return false; // gone: the reaper's exit tells the rest
  }
}

/**
 * -d: the runtime's foreground `run` under a small shell reaper in its own
 * session, with stdout+stderr to the log file; the shell writes the exit
 * status when the container ends (so `ps -a` can show it) and, with --rm,
 * removes the container's directory. Returns once the container exists.
 */
async function startDetached(o: RunContainerOptions): Promise<number> {
  if (o.tty) {
    throw new S2nError('EUSAGE', 'run container: -d with -t is not supported yet', { hint: 'drop -t for a detached container', context: { exitStatus: EXIT_RUNNER } });
  }
  if (o.logPath === undefined || o.exitPath === undefined) throw new Error('startDetached: logPath and exitPath are required');
  await rm(o.pidFile, { force: true });
  await rm(o.runtimeLog, { force: true });
  const args = o.runtime.runArgs(o.id, o.bundle, { pidFile: o.pidFile, log: o.runtimeLog });
  const script = 'log=$1; exitf=$2; rmdir=$3; shift 3; "$@" >>"$log" 2>&1 </dev/null; echo $? >"$exitf.tmp" && mv "$exitf.tmp" "$exitf"; [ -z "$rmdir" ] || rm -rf "$rmdir"';
  const child = spawn('/bin/sh', ['-c', script, 'sh', o.logPath, o.exitPath, o.removeDir ?? '', o.runtime.info.path, ...args], {
    detached: true,
    stdio: 'ignore',
    env: o.env ?? process.env,
  });
  const exited: { done: boolean; wake?: () => void } = { done: false };
  const ended = new Promise<void>((res) => {
    child.once('exit', () => res());
    child.once('error', () => res());
  }).then(() => markDone(exited));
  let pid = await waitForPid(o.pidFile, exited);
  // The pid file comes before the exec of the command, which can still fail: wait for the exec or the reaper's end.
  while (pid !== undefined && !exited.done && (await stillRuntime(pid, o.runtime.info.path))) await sleep(5);
  if (exited.done && (await runtimeLogErrors(o.runtimeLog)).length > 0) pid = undefined;
  if (pid === undefined) {
    await ended;
    const errors = await runtimeLogErrors(o.runtimeLog);
    const log = await readFile(o.logPath, 'utf8').catch(() => '');
    throw classifyRuntimeFailure(errors.length > 0 ? errors : log.trim().split('\n').slice(-3), o.runtime.info.name, o.argv0);
  }
  child.unref();
  o.onStarted?.(child.pid ?? pid);
  return 0;
}
