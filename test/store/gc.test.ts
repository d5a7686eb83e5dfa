import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S2nError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { Descriptor } from '../../src/oci/types.js';
import { acquireLock } from '../../src/store/lock.js';
import { ContentStore } from '../../src/store/store.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { blob, deadPid, indexOf, tinyImage, type TinyImage } from './util.js';

let dir: string;
let store: ContentStore;
beforeEach(async () => {
  dir = await makeTempDir('s2n-gc-');
  store = await ContentStore.open(join(dir, 'store'));
});
afterEach(async () => {
  await removeDir(dir);
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function putImage(img: TinyImage): Promise<void> {
  for (const b of img.blobs) await store.putBytes(b.desc, b.bytes);
}

async function present(...descs: Descriptor[]): Promise<boolean[]> {
  return Promise.all(descs.map((d) => store.has(d)));
}

describe('gc', () => {
  it('keeps everything reachable (index → manifests → config + layers), sweeps the rest', async () => {
    const a = await tinyImage({ a: 'a' });
    const b = await tinyImage({ b: 'b' });
    const absent = await tinyImage({ c: 'c' }); // another platform's manifest, never fetched
    await putImage(a);
    await putImage(b);
    const idx = indexOf([b.manifest, absent.manifest]);
    await store.putBytes(idx.desc, idx.bytes);
    const stray = blob('nobody references me');
    await store.putBytes(stray.desc, stray.bytes);
    await store.tag('docker.io/library/a:1', a.manifest);
    await store.tag('docker.io/library/b:1', idx.desc);

    const dry = await store.gc({ dryRun: true });
    expect(dry.removedBlobs).toEqual([stray.desc.digest]);
    expect(await store.has(stray.desc)).toBe(true);

    const res = await store.gc();
    expect(res.removedBlobs).toEqual([stray.desc.digest]);
    expect(res.freedBytes).toBe(stray.bytes.length);
    expect(res.missing).toEqual([absent.manifest.digest]);
    expect(res.unreadable).toEqual([]);
    expect(await store.has(stray.desc)).toBe(false);
    expect(await present(...a.blobs.map((x) => x.desc), ...b.blobs.map((x) => x.desc), idx.desc)).not.toContain(false);

    // rmi a → its blobs go; b's stay.
    await store.untag('docker.io/library/a:1');
    const res2 = await store.gc();
    expect(res2.removedBlobs.sort()).toEqual(a.blobs.map((x) => x.desc.digest).sort());
    expect(await present(...b.blobs.map((x) => x.desc))).toEqual([true, true, true]);
  });

  it('keeps shared layers while any image uses them', async () => {
    const a = await tinyImage({ same: 'layer' });
    await putImage(a);
    const cfg2 = blob('{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}', MediaType.ociConfig);
    const m2 = blob(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: cfg2.desc, layers: [a.layer] }), MediaType.ociManifest);
    await store.putBytes(cfg2.desc, cfg2.bytes);
    await store.putBytes(m2.desc, m2.bytes);
    await store.tag('x:1', a.manifest);
    await store.tag('x:2', m2.desc);
    await store.untag('x:1');
    const res = await store.gc();
    expect(res.removedBlobs.sort()).toEqual([a.config.digest, a.manifest.digest].sort());
    expect(await store.has(a.layer)).toBe(true);
  });

  it('reports a damaged manifest and keeps the manifest blob itself', async () => {
    const a = await tinyImage();
    await putImage(a);
    await store.tag('x:1', a.manifest);
    await writeFile(store.blobPath(a.manifest.digest), Buffer.alloc(a.manifest.size, 0x20));
    const res = await store.gc();
    expect(res.unreadable).toEqual([a.manifest.digest]);
    expect(existsSync(store.blobPath(a.manifest.digest))).toBe(true);
  });

  it('refuses to collect when index.json is damaged or missing', async () => {
    const b = blob('x');
    await store.putBytes(b.desc, b.bytes);
    await writeFile(store.indexPath, '{"schemaVersion":2,"manif');
    await expect(store.gc()).rejects.toMatchObject({ code: 'ESTORE' });
    await rm(store.indexPath);
    await expect(store.gc()).rejects.toMatchObject({ code: 'ESTORE' });
    expect(await store.has(b.desc)).toBe(true);
  });

  it('leaves unknown files in blobs/ alone', async () => {
    await writeFile(join(store.blobsDir, 'sha256', 'README'), 'not a blob');
    expect((await store.gc()).removedBlobs).toEqual([]);
    expect(existsSync(join(store.blobsDir, 'sha256', 'README'))).toBe(true);
  });

  it('waits for a live lease, and gives up with ELOCKED after its timeout', async () => {
    const b = blob('written inside a lease, not tagged yet');
    let gcError: unknown;
    let waitMessage = '';
    await store.withLease(async () => {
      await store.putBytes(b.desc, b.bytes);
      gcError = await store
        .gc({ timeoutMs: 150, onWait: (m) => (waitMessage = m) })
        .then(() => undefined, (e: unknown) => e);
    });
    expect(gcError).toBeInstanceOf(S2nError);
    expect((gcError as S2nError).code).toBe('ELOCKED');
    expect(waitMessage).toMatch(/waiting for 1 running pull/);
    expect(await store.has(b.desc)).toBe(true);
  });

  it('runs as soon as the lease ends; the pull tagged its blobs by then', async () => {
    const img = await tinyImage();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let inLease!: () => void;
    const leaseTaken = new Promise<void>((r) => (inLease = r));
    const pull = store.withLease(async () => {
      inLease();
      await putImage(img);
      await released;
      await store.tag('docker.io/library/img:1', img.manifest);
    });
    await leaseTaken;
    let waited = false;
    const gcP = store.gc({ onWait: () => (waited = true) });
    await sleep(100);
    release();
    await pull;
    const res = await gcP;
    expect(waited).toBe(true);
    expect(res.removedBlobs).toEqual([]);
    expect(await present(...img.blobs.map((x) => x.desc))).toEqual([true, true, true]);
  });

  it('a lease waits for a running gc', async () => {
    const gcLock = await acquireLock(store.gcLockPath);
    let ran = false;
    let told = '';
    const p = store.withLease(
      async () => {
        ran = true;
      },
      { onWait: (m) => (told = m) },
    );
    await sleep(100);
    expect(ran).toBe(false);
    expect(told).toMatch(/prune/);
    expect(await readdir(store.leasesDir)).toEqual([]); // it does not hold a lease while waiting
    await gcLock.release();
    await p;
    expect(ran).toBe(true);
    expect(await readdir(store.leasesDir)).toEqual([]);
  });

  it('removes leases and ingest files of dead processes, not live ones', async () => {
    const pid = await deadPid();
    await writeFile(join(store.leasesDir, `${pid}-00ff`), JSON.stringify({ pid, hostname: hostname(), started: '', nonce: 'x' }));
    await writeFile(join(store.leasesDir, `${pid}-00fe`), ''); // died mid-write: the name still tells
    await writeFile(join(store.ingestDir, `${pid}-abcdef`), 'partial');
    await writeFile(join(store.ingestDir, `${process.pid}-abcdef`), 'being written');
    const res = await store.gc({ timeoutMs: 2000 });
    expect(res.removedLeases).toBe(2);
    expect(res.removedIngest).toBe(1);
    expect(await readdir(store.leasesDir)).toEqual([]);
    expect(await readdir(store.ingestDir)).toEqual([`${process.pid}-abcdef`]);
  });

  it('concurrent pulls and gcs: no tagged image ever loses a blob', async () => {
    const images = await Promise.all(Array.from({ length: 12 }, (_, i) => tinyImage({ [`f${i}`]: `content ${i}` })));
    const pulls = images.map((img, i) =>
      (async () => {
        await sleep(i * 7);
        await store.withLease(async () => {
          for (const b of img.blobs) {
            await store.putBytes(b.desc, b.bytes);
            await sleep(2);
          }
          await store.tag(`docker.io/library/p${i}:1`, img.manifest);
        });
      })(),
    );
    const gcs = Array.from({ length: 6 }, async (_, i) => {
      await sleep(i * 15);
      return store.gc({ timeoutMs: 10_000 });
    });
    const results = await Promise.all([...gcs, ...pulls]);
    for (const r of results.slice(0, 6)) expect(r && 'removedBlobs' in r ? r.removedBlobs : []).toEqual([]);
    for (const img of images) expect(await present(...img.blobs.map((x) => x.desc))).toEqual([true, true, true]);
    expect(await readdir(store.leasesDir)).toEqual([]);
  });
});
