import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkExecutable } from '../../src/runtime/exec-check.js';
import { exitStatusOf } from '../../src/runtime/exit-status.js';
import { tempDir } from '../helpers/cli.js';

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (e) {
    return exitStatusOf(e);
  }
}

describe('checkExecutable', () => {
  it('finds commands on PATH and by path, resolving symlinks inside the root only', async () => {
    const d = tempDir();
    const outside = join(d, 'host-bin');
    mkdirSync(outside);
    writeFileSync(join(outside, 'hostonly'), '#!/bin/sh\n', { mode: 0o755 });
    const root = join(d, 'rootfs');
    for (const p of ['bin', 'usr/bin', 'app', 'data']) mkdirSync(join(root, p), { recursive: true });
    writeFileSync(join(root, 'bin/busybox'), 'x', { mode: 0o755 });
    symlinkSync('busybox', join(root, 'bin/sh'));
    symlinkSync('/bin/busybox', join(root, 'usr/bin/env'));
    writeFileSync(join(root, 'app/run.sh'), '#!/bin/sh\n', { mode: 0o644 });
    // Absolute and ../ links that would leave the root on the host resolve inside it.
    symlinkSync(join(outside, 'hostonly'), join(root, 'bin/escape'));
    symlinkSync('../../../../../../host-bin/hostonly', join(root, 'bin/escape2'));
    symlinkSync('/bin', join(root, 'usr/local'));
    chmodSync(join(root, 'data'), 0o755);

    expect(await checkExecutable(root, 'sh', '/usr/local/bin:/usr/bin:/bin')).toBe('/bin/sh');
    expect(await checkExecutable(root, 'env', '/usr/bin:/bin')).toBe('/usr/bin/env');
    expect(await checkExecutable(root, '/usr/local/sh')).toBe('/usr/local/sh');
    expect(await checkExecutable(root, './sh', '/bin', '/bin')).toBe('/bin/sh');
    expect(await statusOf(checkExecutable(root, 'nonexist', '/bin'))).toBe(127);
    expect(await statusOf(checkExecutable(root, '/bin/escape'))).toBe(127);
    expect(await statusOf(checkExecutable(root, '/bin/escape2'))).toBe(127);
    expect(await statusOf(checkExecutable(root, '/app/run.sh'))).toBe(126);
    expect(await statusOf(checkExecutable(root, '/data'))).toBe(126);
    expect(await statusOf(checkExecutable(root, 'run.sh', '/app'))).toBe(127);
    await expect(checkExecutable(root, 'nonexist', '/bin')).rejects.toThrow('run container: nonexist: executable file not found in $PATH');
  });
});
