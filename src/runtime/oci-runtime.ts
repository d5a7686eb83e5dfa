/**
 * The runc/crun command line: one method per runtime command, every call
 * with our own --root. The spawn function is a defaulted parameter so unit
 * tests check the argument lists without running anything.
 */
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { S2nError } from '../errors.js';
import type { RuntimeInfo } from './find.js';

export type SpawnFn = (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

/** `runc state` / `crun state` output (runtime-spec State plus runc's extras). */
export interface RuntimeState {
  id: string;
  status: 'creating' | 'created' | 'running' | 'stopped' | 'paused' | string;
  pid?: number;
  bundle?: string;
}

export interface RunOptions {
  stdio: StdioOptions;
  /** Written by the runtime once the container exists (before its process starts). */
  pidFile?: string;
  detach?: boolean;
  /** The runtime's own log (JSON lines); its error entries tell a runtime failure from the container's exit. */
  log?: string;
  env?: NodeJS.ProcessEnv;
  /** Start in a new session (detached reaper). */
  detached?: boolean;
}

export class OciRuntime {
  constructor(
    readonly info: Pick<RuntimeInfo, 'name' | 'path'>,
    readonly root: string,
    private readonly spawnFn: SpawnFn = nodeSpawn,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /**
   * Global options. Rootless runc detects rootless mode itself (`--rootless`
   * defaults to auto) and crun likewise; both only need a --root they can write.
   */
  globalArgs(): string[] {
    return ['--root', this.root];
  }

  runArgs(id: string, bundle: string, o: Pick<RunOptions, 'pidFile' | 'detach' | 'log'> = {}): string[] {
    return [
      ...this.globalArgs(),
      ...(o.log !== undefined ? ['--log', o.log, '--log-format', 'json'] : []),
      'run',
      '--bundle',
      bundle,
      ...(o.pidFile !== undefined ? ['--pid-file', o.pidFile] : []),
      ...(o.detach ? ['--detach'] : []),
      id,
    ];
  }

  /** `runtime run`: the child is the runtime, which exits with the container's status. */
  run(id: string, bundle: string, o: RunOptions): ChildProcess {
    return this.spawnFn(this.info.path, this.runArgs(id, bundle, o), {
      stdio: o.stdio,
      env: o.env ?? this.env,
      ...(o.detached ? { detached: true } : {}),
    });
  }

  async create(id: string, bundle: string, pidFile?: string): Promise<void> {
    await this.exec(['create', '--bundle', bundle, ...(pidFile !== undefined ? ['--pid-file', pidFile] : []), id], `create container ${id}`);
  }

  async start(id: string): Promise<void> {
    await this.exec(['start', id], `start container ${id}`);
  }

  /**
   * Whether the runtime keeps any state for `id` (runc and crun both keep a
   * directory per container under --root): a file check instead of a process.
   */
  hasState(id: string): boolean {
    return existsSync(join(this.root, id));
  }

  /** The container's state, or undefined when the runtime does not know it. */
  async state(id: string): Promise<RuntimeState | undefined> {
    const r = await this.capture(['state', id]);
    if (r.code !== 0) {
      if (/does not exist|not found|No such file or directory/i.test(r.stderr)) return undefined;
      throw runtimeError(`query container ${id}`, this.info.name, r.stderr);
    }
    return JSON.parse(r.stdout) as RuntimeState;
  }

  async kill(id: string, signal: string | number, o: { all?: boolean } = {}): Promise<void> {
    const sig = typeof signal === 'number' ? String(signal) : signal.replace(/^SIG/, '');
    await this.exec(['kill', ...(o.all ? ['--all'] : []), id, sig], `signal container ${id}`);
  }

  async delete(id: string, o: { force?: boolean } = {}): Promise<void> {
    const r = await this.capture(['delete', ...(o.force ? ['--force'] : []), id]);
    if (r.code !== 0 && !/does not exist|not found|No such file or directory/i.test(r.stderr)) {
      throw runtimeError(`delete container ${id}`, this.info.name, r.stderr);
    }
  }

  async list(): Promise<RuntimeState[]> {
    const r = await this.capture(['list', '--format', 'json']);
    if (r.code !== 0) throw runtimeError('list containers', this.info.name, r.stderr);
    // runc prints `null` for none.
    return (JSON.parse(r.stdout.trim() || 'null') as RuntimeState[] | null) ?? [];
  }

  private async exec(args: string[], what: string): Promise<void> {
    const r = await this.capture(args);
    if (r.code !== 0) throw runtimeError(what, this.info.name, r.stderr);
  }

  /** Runs a runtime command to completion. */
  capture(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((res, rej) => {
      const child = this.spawnFn(this.info.path, [...this.globalArgs(), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      child.once('error', (e) => rej(new S2nError('EINTERNAL', `run ${this.info.path}: ${e.message}`, { cause: e, hint: 'check the runtime binary' })));
      child.once('close', (code) => res({ code: code ?? -1, stdout, stderr }));
    });
  }
}

/**
 * The runtime's error text, reduced to its message: runc logs
 * `time="…" level=error msg="…"`, crun prints `crun: …` or bare lines.
 */
export function summarizeRuntimeStderr(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => {
      const m = /level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"/.exec(l);
      return m?.[1] !== undefined ? m[1].replace(/\\"/g, '"').replace(/\\\\/g, '\\') : l.replace(/^(crun|runc): /, '').trim();
    })
    .filter(Boolean);
  return lines[lines.length - 1] ?? 'no error message';
}

export function runtimeError(what: string, runtime: string, stderr: string): S2nError {
  return new S2nError('EINTERNAL', `${what}: ${runtime}: ${summarizeRuntimeStderr(stderr)}`, {
    hint: `the runtime refused; run with --debug for its full output`,
    context: { runtime, stderr: stderr.slice(-2000) },
  });
}
