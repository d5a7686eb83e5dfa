/**
 * Several real processes on one store: the cases in-process promises cannot
 * show (separate pids, SIGKILL mid-write). Children run the store compiled to
 * JS (see buildStoreForChildren).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { ContentStore } from '../../src/store/store.js';
import { killOnExit, makeTempDir, removeDir } from '../helpers/tmp.js';
import { blob, buildStoreForChildren, deadPid, runChild, writeChildScript, type ChildResult } from './util.js';

let storeModule: string;
let cleanupBuild: () => Promise<void>;
let script: string;
let scriptDir: string;
let dir: string;
let root: string;

beforeAll(async () => {
  ({ storeModule, cleanup: cleanupBuild } = await buildStoreForChildren());
  scriptDir = await makeTempDir('s2n-mp-script-');
  script = await writeChildScript(scriptDir);
});
afterAll(async () => {
  await cleanupBuild?.();
  if (scriptDir) await removeDir(scriptDir);
});
beforeEach(async () => {
  dir = await makeTempDir('s2n-mp-');
  root = join(dir, 'store');
});
afterEach(async () => {
  await removeDir(dir);
});

function expectOk(r: ChildResult): void {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout.trim()).toBe('ok');
}

describe('several processes on one store', () => {
  it('open a fresh root at once', async () => {
    const rs = await Promise.all(Array.from({ length: 4 }, () => runChild(script, [storeModule, 'open', root])));
    rs.forEach(expectOk);
    expect((await readdir(root)).sort()).toEqual(['blobs', 'index.json', 'ingest', 'leases', 'locks', 'oci-layout']);
  });

  it('put the same blob at once: both succeed, one verified blob, no leftovers', async () => {
    const { desc, bytes } = blob(randomBytes(4 << 20));
    const file = join(dir, 'blob.bin');
    await writeFile(file, bytes);
    await ContentStore.open(root);
    const rs = await Promise.all([0, 1].map(() => runChild(script, [storeModule, 'put', root, file, desc.digest, String(desc.size)])));
    rs.forEach(expectOk);
    const store = await ContentStore.open(root);
    expect((await store.readBlob(desc, 8 << 20)).equals(bytes)).toBe(true);
    expect(await readdir(store.ingestDir)).toEqual([]);
    expect(await readdir(store.leasesDir)).toEqual([]);
  });

  it('tag at once, starting from a stale index lock: 3 × 20 names, none lost', async () => {
    const { desc } = blob('{}');
    const s0 = await ContentStore.open(root);
    // All three find the lock of a dead process first and race to break it.
    const pid = await deadPid();
    await writeFile(s0.indexLockPath, JSON.stringify({ pid, hostname: hostname(), started: '', nonce: `n${pid}` }));
    const rs = await Promise.all(['a', 'b', 'c'].map((p) => runChild(script, [storeModule, 'tag', root, `example.com/${p}:`, '20', desc.digest, String(desc.size)])));
    rs.forEach(expectOk);
    const store = await ContentStore.open(root);
    const names = (await store.list()).map((e) => e.name).sort();
    expect(names).toHaveLength(60);
    expect(new Set(names).size).toBe(60);
    expect(await readdir(store.locksDir)).toEqual([]);
  });

  it('a pull killed mid-write leaves a store the next command uses without error', async () => {
    const { desc, bytes } = blob(randomBytes(100_000));
    await ContentStore.open(root);
    const child = spawn(process.execPath, [script, storeModule, 'hang', root, desc.digest, String(desc.size)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const unregister = killOnExit(child.pid ?? 0);
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('ready')) resolve();
      });
      child.once('exit', () => reject(new Error(`child exited early: ${err}`)));
    });
    child.kill('SIGKILL');
    await once(child, 'exit');
    unregister();

    const store = await ContentStore.open(root);
    // What the dead pull left: a partial blob, its lease, the index lock.
    expect(await readdir(store.ingestDir)).toHaveLength(1);
    expect(await readdir(store.leasesDir)).toHaveLength(1);
    expect(await readdir(store.locksDir)).toContain('index.json.lock');

    // Every next step works, and quickly (no waiting for timeouts).
    const t0 = Date.now();
    await store.withLease(async () => {
      await store.putBytes(desc, bytes);
      await store.tag('docker.io/library/after:kill', { ...desc, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    });
    const res = await store.gc({ timeoutMs: 5000 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(res.removedIngest).toBe(1);
    expect(res.removedLeases).toBe(1);
    expect(await readdir(store.ingestDir)).toEqual([]);
    expect(await readdir(store.leasesDir)).toEqual([]);
    expect(await readdir(store.locksDir)).toEqual([]);
    expect(await store.resolveName('docker.io/library/after:kill')).toMatchObject({ digest: desc.digest });
    expect(await store.has(desc)).toBe(true);
  });
});
