/** RootfsCache: built once in a temp dir and renamed into place, warm hits, leftovers, concurrency, removal; as root and as a user with subuids. */
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RootfsCache, MARKER } from '../../src/rootfs/cache.js';
import type { IdPlan } from '../../src/userns/types.js';
import { CAN_RUN_AS_USER, IS_ROOT, runCli, testUser } from '../helpers/cli.js';
import { writeOciLayout } from '../helpers/archives.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { deadPid } from '../store/util.js';
import { drive, giveToUser, storeWith } from './util.js';

const ROOT_PLAN: IdPlan = { mode: 'root', uidMappings: [], gidMappings: [] };

let base: string;
beforeEach(async () => {
  base = await makeTempDir('s2n-rootfs-');
});
afterEach(async () => {
  await removeDir(base);
});

describe.skipIf(!IS_ROOT)('RootfsCache as root', () => {
  it('builds once, records the mode, and a warm ensure only reads the marker', async () => {
    const { store, image } = await storeWith(join(base, 'store'));
    const cache = new RootfsCache(store);
    const progress: number[] = [];
    const cold = await cache.ensure(image, { plan: ROOT_PLAN, onProgress: (p) => progress.push(p.layer) });
    expect(cold.built).toBe(true);
    expect(progress).toEqual([1]);
    expect(cold.path).toBe(join(store.root, 'rootfs', 'root', image.manifestDesc.digest.slice(7), 'rootfs'));
    const st = await lstat(join(cold.path, 'home/app/data'));
    expect([st.uid, st.gid, st.mode & 0o7777, st.nlink]).toEqual([1000, 1000, 0o640, 2]);
    const marker = JSON.parse(await readFile(join(cold.path, '..', MARKER), 'utf8')) as Record<string, unknown>;
    expect(marker).toMatchObject({ manifest: image.manifestDesc.digest, mode: 'root', uidMappings: [], gidMappings: [] });
    const before = await stat(join(cold.path, 'home/app/data'));
    const warm = await cache.ensure(image, { plan: ROOT_PLAN, onProgress: () => progress.push(-1) });
    expect(warm).toEqual({ ...cold, built: false });
    expect(progress).toEqual([1]);
    expect((await stat(join(cold.path, 'home/app/data'))).ino).toBe(before.ino);
    // Nothing but the entry is left in the mode dir.
    expect(await readdir(join(store.root, 'rootfs', 'root'))).toEqual([image.manifestDesc.digest.slice(7)]);
  });

  it('cleans up what an interrupted build left, and builds again', async () => {
    const { store, image } = await storeWith(join(base, 'store'));
    const modeDir = join(store.root, 'rootfs', 'root');
    const dead = join(modeDir, `.tmp-${await deadPid()}-0123456789abcdef`);
    await mkdir(join(dead, 'rootfs', 'ro'), { recursive: true });
    await writeFile(join(dead, 'rootfs', 'ro', 'half'), 'x');
    // A live builder's temp dir is not touched.
    const live = join(modeDir, `.tmp-${process.pid}-fedcba9876543210`);
    await mkdir(live);
    const r = await new RootfsCache(store).ensure(image, { plan: ROOT_PLAN });
    expect(r.built).toBe(true);
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });

  it('an entry without a marker (damaged) is rebuilt', async () => {
    const { store, image } = await storeWith(join(base, 'store'));
    const cache = new RootfsCache(store);
    const r = await cache.ensure(image, { plan: ROOT_PLAN });
    await writeFile(join(r.path, 'etc/passwd'), 'tampered');
    await import('node:fs/promises').then((fs) => fs.unlink(join(r.path, '..', MARKER)));
    const again = await cache.ensure(image, { plan: ROOT_PLAN });
    expect(again.built).toBe(true);
    expect(await readFile(join(again.path, 'etc/passwd'), 'utf8')).toBe('root:x:0:0::/root:/bin/sh\n');
  });

  it('two callers at once build it once (same process and two processes)', async () => {
    const { store, image } = await storeWith(join(base, 'store'));
    const cache = new RootfsCache(store);
    const both = await Promise.all([cache.ensure(image, { plan: ROOT_PLAN }), new RootfsCache(store).ensure(image, { plan: ROOT_PLAN })]);
    expect(both.map((b) => b.built).sort()).toEqual([false, true]);
    await cache.remove(image.manifestDesc.digest);
    const procs = await Promise.all([1, 2, 3].map(() => drive<{ built: boolean; path: string }>(store.root, 'ensure', 'test/rootfs:1', false)));
    expect(procs.filter((p) => p.built)).toHaveLength(1);
    expect(new Set(procs.map((p) => p.path)).size).toBe(1);
  });

  it('a layer that does not match its diff_id leaves no entry and no temp dir', async () => {
    const { store, image } = await storeWith(join(base, 'store'), {
      mutateConfig: (c) => {
        c.rootfs.diff_ids = [`sha256:${'0'.repeat(64)}`];
      },
    });
    await expect(new RootfsCache(store).ensure(image, { plan: ROOT_PLAN })).rejects.toMatchObject({ code: 'EDIGEST' });
    expect(await readdir(join(store.root, 'rootfs', 'root'))).toEqual([]);
  });

  it('remove and prune drop caches of other manifests and dead temp dirs', async () => {
    const { store, image } = await storeWith(join(base, 'store'));
    const cache = new RootfsCache(store);
    await cache.ensure(image, { plan: ROOT_PLAN });
    const single: IdPlan = { mode: 'single', uidMappings: [{ containerID: 0, hostID: 0, size: 1 }], gidMappings: [{ containerID: 0, hostID: 0, size: 1 }] };
    await cache.ensure(image, { plan: single });
    const dead = join(store.root, 'rootfs', 'single', `.tmp-${await deadPid()}-0123456789abcdef`);
    await mkdir(dead);
    expect(await cache.prune(new Set([image.manifestDesc.digest]), { dryRun: true })).toEqual({ removed: [], removedTemp: 1 });
    expect(await cache.prune(new Set([image.manifestDesc.digest]))).toEqual({ removed: [], removedTemp: 1 });
    expect(existsSync(dead)).toBe(false);
    expect(await cache.prune(new Set())).toEqual({ removed: [image.manifestDesc.digest], removedTemp: 0 });
    expect(await readdir(join(store.root, 'rootfs', 'root'))).toEqual([]);
    expect(await readdir(join(store.root, 'rootfs', 'single'))).toEqual([]);
    expect(await cache.remove(image.manifestDesc.digest)).toBe(0);
  });
});

describe.skipIf(!CAN_RUN_AS_USER)('RootfsCache as an unprivileged user (subid)', () => {
  it('builds inside the user namespace, shares it warm, and removes it again', async () => {
    const u = testUser()!;
    await giveToUser(base);
    const root = join(base, 'store');
    const layout = join(base, 'layout');
    const { test } = await storeWith(join(base, 'scratch'));
    await writeOciLayout(layout, [{ image: test, refName: 'latest' }]);
    const load = await runCli(['load', '-q', '-i', layout, '--tag', 'test/rootfs:1'], { as: 'user', root });
    expect(load.code).toBe(0);
    const cold = await drive<{ built: boolean; path: string; plan: IdPlan }>(root, 'ensure', 'test/rootfs:1', true);
    expect(cold.built).toBe(true);
    expect(cold.plan.mode).toBe('subid');
    expect(cold.path).toMatch(/\/rootfs\/subid\/[0-9a-f]{64}\/rootfs$/);
    const st = await lstat(join(cold.path, 'home/app/data'));
    expect([st.uid, st.gid, st.mode & 0o7777, st.nlink]).toEqual([100999, 100999, 0o640, 2]);
    expect((await lstat(join(cold.path, 'etc/passwd'))).uid).toBe(u.uid);
    const warm = await drive<{ built: boolean; path: string }>(root, 'ensure', 'test/rootfs:1', true);
    expect(warm).toMatchObject({ built: false, path: cold.path });
    // The user cannot unlink files in dirs owned by its subuids; remove() goes through the namespace.
    const digest = `sha256:${cold.path.split('/').slice(-2)[0]}`;
    expect(await drive(root, 'remove', digest, true)).toEqual({ removed: 1 });
    expect(existsSync(join(cold.path, '..'))).toBe(false);
    // prune as the user, after a rebuild.
    await drive(root, 'ensure', 'test/rootfs:1', true);
    expect(await drive(root, 'prune', '[]', true)).toEqual({ removed: [digest], removedTemp: 0 });
    expect(existsSync(join(cold.path, '..'))).toBe(false);
  });
});
