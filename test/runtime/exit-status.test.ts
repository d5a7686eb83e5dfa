import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classifyRuntimeFailure, exitStatusOf, runtimeLogErrors, statusFromExit } from '../../src/runtime/exit-status.js';
import { tempDir } from '../helpers/cli.js';

describe('exit status mapping', () => {
  it('uses the code, or 128+N for a signal', () => {
    expect(statusFromExit(0, null)).toBe(0);
    expect(statusFromExit(3, null)).toBe(3);
    expect(statusFromExit(null, 'SIGKILL')).toBe(137);
    expect(statusFromExit(null, 'SIGTERM')).toBe(143);
    expect(statusFromExit(null, null)).toBe(125);
  });

  it('maps the runtime messages of runc and crun to 127, 126 and 125', () => {
    const runc127 = classifyRuntimeFailure(['runc run failed: unable to start container process: exec: "nonexist": executable file not found in $PATH'], 'runc');
    expect(exitStatusOf(runc127)).toBe(127);
    expect(runc127.message).toBe('run container: nonexist: executable file not found in $PATH');
    expect(exitStatusOf(classifyRuntimeFailure(['executable file `nonexist` not found in $PATH: No such file or directory'], 'crun'))).toBe(127);
    expect(exitStatusOf(classifyRuntimeFailure(['runc run failed: unable to start container process: exec: "/bin/true": permission denied'], 'runc'))).toBe(126);
    expect(exitStatusOf(classifyRuntimeFailure(['open executable: Permission denied'], 'crun', '/bin/true'))).toBe(126);
    const other = classifyRuntimeFailure(['runc run failed: invalid rootfs: stat /nope: no such file or directory'], 'runc');
    expect(exitStatusOf(other)).toBe(125);
    expect(other.message).toBe('run container: runc: runc run failed: invalid rootfs: stat /nope: no such file or directory');
    const hybrid = classifyRuntimeFailure(['cgroups in hybrid mode not supported, drop all controllers from cgroupv2'], 'crun');
    expect(hybrid.hint).toMatch(/crun does not support cgroup v1\+v2 hybrid hosts: use --runtime runc/);
    expect(exitStatusOf(new Error('x'))).toBe(125);
  });

  it('reads only error entries of a JSON runtime log', async () => {
    const d = tempDir();
    const f = join(d, 'log');
    writeFileSync(f, '{"level":"warning","msg":"w"}\n{"msg":"boom","level":"error","time":"t"}\n');
    expect(await runtimeLogErrors(f)).toEqual(['boom']);
    expect(await runtimeLogErrors(join(d, 'missing'))).toEqual([]);
  });
});
