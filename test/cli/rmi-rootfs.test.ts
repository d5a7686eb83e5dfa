/** rmi and prune remove the unpacked rootfs caches of removed images, as root and as a user whose caches belong to subuids. */
import { existsSync } from 'node:fs';
import { chown, mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeOciLayout } from '../helpers/archives.js';
import { CAN_RUN_AS_USER, IS_ROOT, cliSandbox, runCli, testUser } from '../helpers/cli.js';
import { buildImage } from '../helpers/images.js';
import { drive, LAYERS } from '../rootfs/util.js';
import { deadPid } from '../store/util.js';

const cases = [
  { who: 'root', as: undefined, mode: 'root', enabled: IS_ROOT },
  { who: 'an unprivileged user (subid)', as: 'user' as const, mode: 'subid', enabled: CAN_RUN_AS_USER },
];

for (const c of cases) {
  describe.skipIf(!c.enabled)(`rmi and prune remove rootfs caches, as ${c.who}`, () => {
    it('rmi removes the cache with the last name; prune removes orphaned entries and dead temp dirs', async () => {
      const sb = cliSandbox();
      const opts = c.as ? { as: c.as } : {};
      const layout = join(sb.dir, 'layout');
      await writeOciLayout(layout, [{ image: await buildImage({ layers: LAYERS }), refName: 'latest' }]);
      expect((await runCli(['load', '-q', '-i', layout, '--tag', 'test/a:1', '--tag', 'test/a:2'], opts)).code).toBe(0);
      const asUser = c.as === 'user';
      const built = await drive<{ path: string }>(sb.root, 'ensure', 'test/a:1', asUser);
      const entry = join(built.path, '..');
      const modeDir = join(entry, '..');
      expect(modeDir.endsWith(`/rootfs/${c.mode}`)).toBe(true);

      // An orphan (its manifest is in no name) and a temp dir of a killed build, owned by a container uid.
      const orphan = join(modeDir, 'f'.repeat(64));
      await rename(entry, orphan);
      // A rebuild for the real name (it also cleans dead temp dirs, so plant one only after it).
      await drive(sb.root, 'ensure', 'test/a:1', asUser);
      const dead = join(modeDir, `.tmp-${await deadPid()}-0123456789abcdef`);
      await mkdir(join(dead, 'rootfs', 'home'), { recursive: true, mode: 0o700 });
      await writeFile(join(dead, 'rootfs', 'home', 'f'), 'x');
      const u = testUser();
      if (asUser && u) {
        // As the worker would have left it: container uid 1000 owns it, the user cannot unlink it directly.
        await chown(join(dead, 'rootfs', 'home', 'f'), 100999, 100999);
        await chown(join(dead, 'rootfs', 'home'), 100999, 100999);
        for (const d of [join(dead, 'rootfs'), dead]) await chown(d, u.uid, u.gid);
      }
      const dry = await runCli(['prune', '--dry-run', '--json'], opts);
      expect(dry.code).toBe(0);
      expect(JSON.parse(dry.stdout)).toMatchObject({ removedRootfs: [`sha256:${'f'.repeat(64)}`], removedRootfsTemp: 1 });
      expect(existsSync(orphan)).toBe(true);
      const pruned = await runCli(['prune', '--json'], opts);
      expect(pruned.stderr).toBe('');
      expect(JSON.parse(pruned.stdout)).toMatchObject({ removedRootfs: [`sha256:${'f'.repeat(64)}`], removedRootfsTemp: 1 });
      expect(existsSync(orphan)).toBe(false);
      expect(existsSync(dead)).toBe(false);
      expect(existsSync(entry)).toBe(true);

      // Removing one of two names keeps the cache; the last name takes it.
      const rmi1 = await runCli(['rmi', '--json', 'test/a:1'], opts);
      expect(JSON.parse(rmi1.stdout)).toMatchObject({ untagged: ['docker.io/test/a:1'], removedRootfs: [] });
      expect(existsSync(entry)).toBe(true);
      const rmi2 = await runCli(['rmi', '--json', 'test/a:2'], opts);
      expect(rmi2.code).toBe(0);
      expect(JSON.parse(rmi2.stdout).removedRootfs).toHaveLength(1);
      expect(existsSync(entry)).toBe(false);
      expect(await readdir(modeDir)).toEqual([]);
    });
  });
}

describe.skipIf(!IS_ROOT)('rmi keeps a rootfs a container still runs on', () => {
  it('warns and keeps it; prune removes it once the container is gone', async () => {
    const { busyboxImage, writeImageArchive } = await import('../helpers/busybox-image.js');
    const { spawnCli } = await import('../helpers/cli.js');
    const sb = cliSandbox();
    const ref = 'localhost/s2n-test/in-use:1';
    const archive = await writeImageArchive(sb.dir, await busyboxImage(), ref);
    expect((await runCli(['load', '-q', '-i', archive])).code).toBe(0);
    const child = spawnCli(['run', '--runtime', 'runc', '-i', '--name', 'user-of-rootfs', ref, 'sh', '-c', 'echo ready; read x; cat /etc/group >/dev/null && echo still-there']);
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 50));
    const modeDir = join(sb.root, 'rootfs', 'root');
    const [entry] = await readdir(modeDir);
    const rmi = await runCli(['rmi', '--json', ref]);
    expect(rmi.code).toBe(0);
    expect(rmi.stderr).toMatch(/container user-of-rootfs uses it/);
    expect(JSON.parse(rmi.stdout)).toMatchObject({ removedRootfs: [] });
    expect(existsSync(join(modeDir, entry!, 'rootfs', 'etc', 'group'))).toBe(true);
    child.stdin?.end('go\n');
    expect(await exited).toBe(0);
    expect(out).toContain('still-there');
    const pruned = await runCli(['prune', '--json']);
    expect(JSON.parse(pruned.stdout).removedRootfs).toHaveLength(1);
    expect(existsSync(join(modeDir, entry!))).toBe(false);
  });
});

describe.skipIf(!IS_ROOT && !CAN_RUN_AS_USER)('prune removes writable roots whose container is gone', () => {
  it('removes a leftover copy and keeps nothing else', async () => {
    const sb = cliSandbox();
    const opts = IS_ROOT ? {} : { as: 'user' as const };
    expect((await runCli(['images'], opts)).code).toBe(0);
    const stray = join(sb.root, 'rootfs', 'rw', 'a'.repeat(64));
    await mkdir(join(stray, 'etc'), { recursive: true });
    await writeFile(join(stray, 'etc', 'f'), 'x');
    const dry = await runCli(['prune', '--dry-run', '--json'], opts);
    expect(JSON.parse(dry.stdout)).toMatchObject({ removedWritableRoots: ['a'.repeat(64)] });
    expect(existsSync(stray)).toBe(true);
    const pruned = await runCli(['prune', '--json'], opts);
    expect(JSON.parse(pruned.stdout)).toMatchObject({ removedWritableRoots: ['a'.repeat(64)] });
    expect(existsSync(stray)).toBe(false);
  });
});
