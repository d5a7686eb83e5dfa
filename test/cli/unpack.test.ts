/** E2E: `s2n-oci unpack IMAGE DIR` writes a standalone bundle, as root (real ownership) and as an unprivileged user (subuids). */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdir, readFile, symlink as symlink_, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateRuntimeConfig } from '../../src/oci/validate.js';
import { writeOciLayout } from '../helpers/archives.js';
import { CAN_RUN_AS_USER, cliSandbox, runCli, testUser } from '../helpers/cli.js';
import { buildImage, dir, file, hardlink, opaqueWhiteout, symlink, whiteout, type TestImage } from '../helpers/images.js';

const LAYERS = [
  [
    dir('etc'),
    file('etc/passwd', 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n'),
    file('etc/group', 'root:x:0:\napp:x:1000:\n'),
    dir('usr/bin'),
    file('usr/bin/su', 'su', { mode: 0o4755 }),
    dir('home/app', { uid: 1000, gid: 1000, mode: 0o750 }),
    file('home/app/data', 'data', { uid: 1000, gid: 1000, mode: 0o640, pax: { 'SCHILY.xattr.user.origin': 'layer-1' } }),
    hardlink('home/app/data2', 'home/app/data'),
    symlink('home/app/link', '/etc/passwd'),
    dir('proc', { mode: 0o555 }),
    file('gone', 'x'),
    dir('opq'),
    file('opq/old', 'old'),
  ],
  [whiteout('gone'), opaqueWhiteout('opq'), file('opq/new', 'new', { uid: 33, gid: 33 })],
];

/** An extended attribute's value as getfattr (package attr) reads it, or undefined. */
function userXattr(path: string, name: string): string | undefined {
  try {
    return execFileSync('getfattr', ['--only-values', '-n', name, '--', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

async function loadImage(image: TestImage, name: string, as?: 'user'): Promise<void> {
  const sb = cliSandbox();
  const layout = join(sb.dir, 'layout');
  await writeOciLayout(layout, [{ image, refName: 'latest' }]);
  const r = await runCli(['load', '-q', '-i', layout, '--tag', name], as ? { as } : {});
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

function image(): Promise<TestImage> {
  return buildImage({ layers: LAYERS, config: { User: 'app', Cmd: ['/bin/sh', '-c', 'id'], WorkingDir: '/home/app', Env: ['A=1'] } });
}

const hasRunc = existsSync('/bin/busybox') && (() => {
  try {
    execFileSync('runc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A runnable image: the host's static busybox, a user `app` owning /home/app. */
function busyboxImage(): Promise<TestImage> {
  return buildImage({
    layers: [
      [
        dir('bin'),
        file('bin/busybox', readFileSync('/bin/busybox'), { mode: 0o755 }),
        symlink('bin/sh', 'busybox'),
        dir('etc'),
        file('etc/passwd', 'root:x:0:0::/:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n'),
        dir('home/app', { uid: 1000, gid: 1000 }),
        file('home/app/f', 'f', { uid: 1000, gid: 1000 }),
      ],
    ],
    config: { User: 'app', Cmd: ['/bin/sh', '-c', 'id -u; id -g; stat -c "%u:%g" /home/app/f; pwd'], WorkingDir: '/home/app' },
  });
}

describe('s2n-oci unpack', () => {
  it('writes rootfs, a valid config.json and the ownership mode, as root', async () => {
    await loadImage(await image(), 'test/unpack:1');
    const out = join(cliSandbox().dir, 'bundle');
    const r = await runCli(['unpack', 'test/unpack:1', out]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(out);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { process: { user: unknown; args: string[]; cwd: string; env: string[] }; root: { path: string } };
    validateRuntimeConfig(config);
    expect(config.root.path).toBe('rootfs');
    expect(config.process.user).toEqual({ uid: 1000, gid: 1000 });
    expect(config.process.args).toEqual(['/bin/sh', '-c', 'id']);
    expect(config.process.cwd).toBe('/home/app');
    expect(config.process.env).toContain('A=1');
    const meta = JSON.parse(await readFile(join(out, 's2n-oci.json'), 'utf8')) as { mode: string };
    expect(meta.mode).toBe('root');
    const data = await lstat(join(out, 'rootfs/home/app/data'));
    expect([data.uid, data.gid, data.mode & 0o7777, data.nlink]).toEqual([1000, 1000, 0o640, 2]);
    expect(userXattr(join(out, 'rootfs/home/app/data'), 'user.origin')).toBe('layer-1');
    expect((await lstat(join(out, 'rootfs/usr/bin/su'))).mode & 0o7777).toBe(0o4755);
    expect((await lstat(join(out, 'rootfs/opq/new'))).uid).toBe(33);
    expect(existsSync(join(out, 'rootfs/opq/old'))).toBe(false);
    expect(existsSync(join(out, 'rootfs/gone'))).toBe(false);
    // `bundle` is the same command; a non-empty directory is refused and left alone.
    const again = await runCli(['bundle', 'test/unpack:1', out]);
    expect(again.code).toBe(125);
    expect(again.stderr).toMatch(/not empty/);
    expect(readFileSync(join(out, 'rootfs/home/app/data', ), 'utf8')).toBe('data');
  });

  it('refuses an unknown image and a directory with files in it', async () => {
    const out = join(cliSandbox().dir, 'full');
    await mkdir(out);
    await writeFile(join(out, 'keep'), 'x');
    const r = await runCli(['unpack', 'nope/nope:1', join(cliSandbox().dir, 'x')]);
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/not in the store/);
    await loadImage(await image(), 'test/unpack:1');
    const r2 = await runCli(['unpack', 'test/unpack:1', out]);
    expect(r2.code).toBe(125);
    expect(readFileSync(join(out, 'keep'), 'utf8')).toBe('x');
  });

  it.skipIf(!CAN_RUN_AS_USER)('as an unprivileged user with a subuid range: image uids land on subuids', async () => {
    const u = testUser()!;
    await loadImage(await image(), 'test/unpack:1', 'user');
    const out = join(cliSandbox().dir, 'bundle');
    const r = await runCli(['unpack', 'test/unpack:1', out], { as: 'user' });
    expect(r.stderr).not.toMatch(/Error|warning/);
    expect(r.code).toBe(0);
    const meta = JSON.parse(await readFile(join(out, 's2n-oci.json'), 'utf8')) as { mode: string; uidMappings: unknown };
    expect(meta.mode).toBe('subid');
    expect(meta.uidMappings).toEqual([
      { containerID: 0, hostID: u.uid, size: 1 },
      { containerID: 1, hostID: 100000, size: 65536 },
    ]);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as { linux: { uidMappings: unknown; namespaces: Array<{ type: string }> } };
    validateRuntimeConfig(config);
    expect(config.linux.uidMappings).toEqual(meta.uidMappings);
    expect(config.linux.namespaces.map((n) => n.type)).toContain('user');
    // Container uid 1000 → host 100000 + 999; container root → the user itself.
    const data = await lstat(join(out, 'rootfs/home/app/data'));
    expect([data.uid, data.gid, data.mode & 0o7777, data.nlink]).toEqual([100999, 100999, 0o640, 2]);
    // Set inside the user namespace, on a file owned by a subuid.
    expect(userXattr(join(out, 'rootfs/home/app/data'), 'user.origin')).toBe('layer-1');
    expect((await lstat(join(out, 'rootfs/etc/passwd'))).uid).toBe(u.uid);
    expect((await lstat(join(out, 'rootfs/opq/new'))).uid).toBe(100032);
    expect((await lstat(join(out, 'rootfs/usr/bin/su'))).mode & 0o7777).toBe(0o4755);
  });

  it.skipIf(!CAN_RUN_AS_USER)('without a subuid range: one mapping, a warning, every file owned by the user', async () => {
    const u = testUser()!;
    await loadImage(await image(), 'test/unpack:1', 'user');
    const out = join(cliSandbox().dir, 'bundle');
    // No newuidmap on PATH → 'single' (PATH holds only setpriv, which runCli needs).
    const bin = join(cliSandbox().dir, 'bin');
    await mkdir(bin);
    await symlink_('/usr/bin/setpriv', join(bin, 'setpriv'));
    const r = await runCli(['unpack', 'test/unpack:1', out], { as: 'user', env: { PATH: bin } });
    expect(r.code).toBe(0);
    expect(r.stderr.match(/warning: newuidmap/g)?.length).toBe(1);
    const meta = JSON.parse(await readFile(join(out, 's2n-oci.json'), 'utf8')) as { mode: string };
    expect(meta.mode).toBe('single');
    const data = await lstat(join(out, 'rootfs/home/app/data'));
    expect([data.uid, data.mode & 0o7777]).toEqual([u.uid, 0o640]);
  });

  for (const as of [undefined, 'user' as const]) {
    it.skipIf(!hasRunc || (as === 'user' && !CAN_RUN_AS_USER))(`the bundle runs with runc${as ? ' rootless' : ''}: USER and owners as the image says`, async () => {
      await loadImage(await busyboxImage(), 'test/bb:1', as);
      const sb = cliSandbox();
      const out = join(sb.dir, 'bundle');
      expect((await runCli(['unpack', '-q', 'test/bb:1', out], as ? { as } : {})).code).toBe(0);
      const state = join(sb.dir, 'runc-state');
      const argv = ['runc', '--root', state, 'run', `s2n-unpack-${process.pid}-${as ?? 'root'}`];
      const u = testUser();
      const cmd = as && u ? ['setpriv', '--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', ...argv] : argv;
      const stdout = execFileSync(cmd[0]!, cmd.slice(1), { cwd: out, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', XDG_RUNTIME_DIR: join(sb.dir, 'run') } });
      expect(stdout.trim().split('\n')).toEqual(['1000', '1000', '1000:1000', '/home/app']);
    });
  }
});
