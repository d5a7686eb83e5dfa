import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { exitStatusOf } from '../../src/runtime/exit-status.js';
import { OciRuntime, type SpawnFn } from '../../src/runtime/oci-runtime.js';
import { runContainer, type PtyLike } from '../../src/runtime/run-container.js';
import { tempDir } from '../helpers/cli.js';

/** A fake runtime: `run` stays up until finish() is called; every other command succeeds at once. */
function fakeRuntime(dir: string) {
  const calls: string[][] = [];
  let runChild: (ChildProcess & EventEmitter) | undefined;
  let runArgs: readonly string[] = [];
  const spawn: SpawnFn = (_cmd, args) => {
    calls.push([...args.slice(2)]);
    const child = new EventEmitter() as ChildProcess & EventEmitter;
    Object.assign(child, { stdout: new PassThrough(), stderr: new PassThrough(), stdin: null, pid: 1000 + calls.length });
    if (args.includes('run')) {
      runChild = child;
      runArgs = args;
    } else {
      setImmediate(() => {
        (child.stdout as PassThrough).end();
        (child.stderr as PassThrough).end();
        child.emit('close', 0, null);
      });
    }
    return child;
  };
  const rt = new OciRuntime({ name: 'runc', path: '/usr/sbin/runc' }, join(dir, 'root'), spawn);
  const opt = (name: string): string => runArgs[runArgs.indexOf(name) + 1]!;
  return {
    rt,
    calls,
    started: () => writeFileSync(opt('--pid-file'), '4321'),
    log: (line: object) => writeFileSync(opt('--log'), `${JSON.stringify(line)}\n`),
    finish: (code: number | null, signal: NodeJS.Signals | null = null) => runChild!.emit('close', code, signal),
    get runArgs() {
      return runArgs;
    },
  };
}

const tick = (ms = 30): Promise<void> => new Promise((r) => setTimeout(r, ms));

function base(dir: string, rt: OciRuntime, signals: EventEmitter) {
  return {
    runtime: rt,
    id: 'c1',
    bundle: join(dir, 'bundle'),
    tty: false,
    interactive: false,
    detach: false,
    runtimeLog: join(dir, 'runtime.log'),
    pidFile: join(dir, 'pid'),
    signals,
    stdout: Object.assign(new PassThrough(), { fd: 1 }),
    stderr: Object.assign(new PassThrough(), { fd: 2 }),
    stdin: Object.assign(new PassThrough(), { fd: 0 }),
  };
}

describe('runContainer with a fake runtime', () => {
  it('passes our fds through, forwards signals with runtime kill, and a second Ctrl-C kills', async () => {
    const d = tempDir();
    const f = fakeRuntime(d);
    const signals = new EventEmitter();
    const notices: string[] = [];
    let cleaned = 0;
    const started: number[] = [];
    const p = runContainer({ ...base(d, f.rt, signals), notice: (l) => notices.push(l), cleanup: async () => void cleaned++, onStarted: (pid) => started.push(pid) });
    await tick();
    expect(f.runArgs.slice(2)).toEqual(['--root', join(d, 'root'), '--log', join(d, 'runtime.log'), '--log-format', 'json', 'run', '--bundle', join(d, 'bundle'), '--pid-file', join(d, 'pid'), 'c1'].slice(2));
    // A signal before the container exists waits for it.
    signals.emit('SIGTERM');
    await tick();
    expect(f.calls.filter((c) => c[0] === 'kill')).toEqual([]);
    f.started();
    await tick(80);
    expect(started).toEqual([4321]);
    expect(f.calls.filter((c) => c[0] === 'kill')).toEqual([['kill', 'c1', 'TERM']]);
    for (const s of ['SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGINT'] as const) signals.emit(s);
    signals.emit('SIGINT');
    await tick();
    expect(f.calls.filter((c) => c[0] === 'kill').map((c) => c[2])).toEqual(['TERM', 'HUP', 'QUIT', 'USR1', 'USR2', 'INT', 'KILL']);
    expect(notices).toEqual(['second interrupt: killing the container']);
    f.finish(137);
    expect(await p).toBe(137);
    expect(cleaned).toBe(1);
    for (const s of ['SIGINT', 'SIGTERM']) expect(signals.listenerCount(s)).toBe(0);
  });

  it('returns the container code, and 128+N when the runtime itself is killed', async () => {
    const d = tempDir();
    for (const [code, signal, want] of [[3, null, 3], [0, null, 0], [null, 'SIGKILL', 137]] as const) {
      const f = fakeRuntime(d);
      const p = runContainer(base(d, f.rt, new EventEmitter()));
      await tick();
      f.started();
      await tick();
      f.finish(code, signal);
      expect(await p).toBe(want);
    }
  });

  it('tells a runtime failure (logged error, never started) from the container exiting 1', async () => {
    const d = tempDir();
    let f = fakeRuntime(d);
    let p = runContainer({ ...base(d, f.rt, new EventEmitter()), argv0: 'nonexist' });
    await tick();
    f.log({ level: 'error', msg: 'runc run failed: unable to start container process: exec: "nonexist": executable file not found in $PATH' });
    f.finish(1);
    const e = await p.catch((x: unknown) => x);
    expect(exitStatusOf(e)).toBe(127);
    f = fakeRuntime(d);
    p = runContainer(base(d, f.rt, new EventEmitter()));
    await tick();
    f.log({ level: 'error', msg: 'runc run failed: invalid rootfs: stat /nope: no such file or directory' });
    f.finish(1);
    const e2 = await p.catch((x: unknown) => x);
    expect(exitStatusOf(e2)).toBe(125);
    expect((e2 as Error).message).toMatch(/invalid rootfs/);
    f = fakeRuntime(d);
    p = runContainer(base(d, f.rt, new EventEmitter()));
    await tick();
    f.started();
    await tick();
    f.finish(1);
    expect(await p).toBe(1);
  });

  it('with -t runs the runtime inside a pty, copies input, forwards resizes', async () => {
    const d = tempDir();
    const f = fakeRuntime(d);
    const writes: string[] = [];
    const resizes: Array<[number, number]> = [];
    let exit: ((e: { exitCode: number }) => void) | undefined;
    let data: ((s: string) => void) | undefined;
    let spawned: { file: string; args: string[]; cols: number; rows: number } | undefined;
    const pty: PtyLike = {
      pid: 1,
      onData: (cb) => (data = cb),
      onExit: (cb) => (exit = cb),
      write: (s) => writes.push(String(s)),
      resize: (c, r) => resizes.push([c, r]),
      kill: () => {},
    };
    const stdout = Object.assign(new PassThrough(), { columns: 100, rows: 30 });
    const stdin = new PassThrough();
    let out = '';
    stdout.on('data', (b: Buffer) => (out += b.toString()));
    const p = runContainer({
      ...base(d, f.rt, new EventEmitter()),
      tty: true,
      interactive: true,
      stdout,
      stdin,
      ptySpawn: (file, args, o) => {
        spawned = { file, args, cols: o.cols, rows: o.rows };
        return pty;
      },
    });
    while (spawned === undefined) await tick(5);
    expect(spawned).toMatchObject({ file: '/usr/sbin/runc', cols: 100, rows: 30 });
    expect(spawned!.args).toContain('run');
    writeFileSync(spawned!.args[spawned!.args.indexOf('--pid-file') + 1]!, '77');
    stdin.write('ls\r');
    data!('/dev/pts/0\r\n');
    stdout.columns = 120;
    stdout.emit('resize');
    await tick();
    expect(writes).toEqual(['ls\r']);
    expect(resizes).toEqual([[120, 30]]);
    exit!({ exitCode: 5 });
    expect(await p).toBe(5);
    expect(out).toBe('/dev/pts/0\r\n');
  });
});
