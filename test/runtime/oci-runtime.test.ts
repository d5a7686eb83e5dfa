import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { OciRuntime, summarizeRuntimeStderr, type SpawnFn } from '../../src/runtime/oci-runtime.js';

interface Call {
  cmd: string;
  args: readonly string[];
  opts: SpawnOptions;
}

/** A spawn that records its calls and answers with `reply(args)`. */
export function fakeSpawn(reply: (args: readonly string[]) => { code: number; stdout?: string; stderr?: string } = () => ({ code: 0 })): { spawn: SpawnFn; calls: Call[] } {
  const calls: Call[] = [];
  const spawn: SpawnFn = (cmd, args, opts) => {
    calls.push({ cmd, args, opts });
    const child = new EventEmitter() as ChildProcess;
    const out = new PassThrough();
    const err = new PassThrough();
    Object.assign(child, { stdout: out, stderr: err, stdin: null, pid: 4242 });
    const r = reply(args);
    setImmediate(() => {
      out.end(r.stdout ?? '');
      err.end(r.stderr ?? '');
      setImmediate(() => {
        child.emit('exit', r.code, null);
        child.emit('close', r.code, null);
      });
    });
    return child;
  };
  return { spawn, calls };
}

describe('OciRuntime argument lists', () => {
  it('puts --root first and builds every command like runc/crun expect', async () => {
    const { spawn, calls } = fakeSpawn((args) =>
      args.includes('state') ? { code: 0, stdout: '{"id":"c1","status":"running","pid":99}' } : args.includes('list') ? { code: 0, stdout: 'null\n' } : { code: 0 },
    );
    const rt = new OciRuntime({ name: 'runc', path: '/usr/sbin/runc' }, '/run/user/1000/s2n-oci/runtime/runc', spawn);
    expect(rt.runArgs('c1', '/b', { pidFile: '/b/pid', log: '/b/log' })).toEqual([
      '--root', '/run/user/1000/s2n-oci/runtime/runc', '--log', '/b/log', '--log-format', 'json', 'run', '--bundle', '/b', '--pid-file', '/b/pid', 'c1',
    ]);
    expect(rt.runArgs('c1', '/b', { detach: true })).toEqual(['--root', '/run/user/1000/s2n-oci/runtime/runc', 'run', '--bundle', '/b', '--detach', 'c1']);
    expect(await rt.state('c1')).toEqual({ id: 'c1', status: 'running', pid: 99 });
    await rt.kill('c1', 'SIGTERM');
    await rt.kill('c1', 9, { all: true });
    await rt.delete('c1', { force: true });
    await rt.create('c1', '/b', '/b/pid');
    await rt.start('c1');
    expect(await rt.list()).toEqual([]);
    expect(calls.map((c) => c.args.slice(2).join(' '))).toEqual([
      'state c1',
      'kill c1 TERM',
      'kill --all c1 9',
      'delete --force c1',
      'create --bundle /b --pid-file /b/pid c1',
      'start c1',
      'list --format json',
    ]);
    expect(calls.every((c) => c.cmd === '/usr/sbin/runc' && c.args[0] === '--root')).toBe(true);
    const child = rt.run('c1', '/b', { stdio: ['ignore', 1, 2], pidFile: '/p', detached: true });
    expect(calls.at(-1)).toMatchObject({ args: ['--root', rt.root, 'run', '--bundle', '/b', '--pid-file', '/p', 'c1'], opts: { stdio: ['ignore', 1, 2], detached: true } });
    child.removeAllListeners();
  });

  it('treats an unknown container as absent and reports other failures with the runtime message', async () => {
    const { spawn } = fakeSpawn((args) =>
      args.includes('state')
        ? { code: 1, stderr: 'time="2026-01-01T00:00:00Z" level=error msg="container does not exist"\n' }
        : { code: 1, stderr: 'time="x" level=error msg="permission denied: \\"/run/runc\\""\n' },
    );
    const rt = new OciRuntime({ name: 'runc', path: 'runc' }, '/r', spawn);
    expect(await rt.state('gone')).toBeUndefined();
    await expect(rt.kill('c1', 'TERM')).rejects.toThrow('signal container c1: runc: permission denied: "/run/runc"');
    await expect(rt.delete('c1')).rejects.toThrow(/delete container c1/);
  });

  it('summarizes runc and crun error output to its last message', () => {
    expect(summarizeRuntimeStderr('time="t" level=warning msg="x"\ntime="t" level=error msg="runc run failed: invalid rootfs: stat /nope: no such file or directory"\n')).toBe(
      'runc run failed: invalid rootfs: stat /nope: no such file or directory',
    );
    expect(summarizeRuntimeStderr('crun: make `/nope` private: No such file or directory\n')).toBe('make `/nope` private: No such file or directory');
  });
});
