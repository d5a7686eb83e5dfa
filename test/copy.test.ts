import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { copyImage, runBounded, type CopyEvent } from '../src/copy.js';
import { isS2nError } from '../src/errors.js';
import type { Descriptor } from '../src/oci/types.js';
import { verifyStream } from '../src/oci/verify.js';
import type { ImageSink, ImageSource, PutOptions } from '../src/sources/source.js';
import { buildImage, buildIndex, file, smallImage, type TestImage, type TestIndex } from './helpers/images.js';

/** An in-memory source over a test image's blobs, recording what was fetched. */
class MemorySource implements ImageSource {
  readonly description = 'memory://test';
  readonly fetched: string[] = [];
  constructor(
    private readonly root: Descriptor,
    private readonly blobs: Map<string, Buffer>,
    private readonly tamper: (d: string, b: Buffer) => Buffer = (_d, b) => b,
  ) {}
  async resolve(): Promise<Descriptor> {
    return this.root;
  }
  async fetch(desc: Descriptor): Promise<Readable> {
    this.fetched.push(desc.digest);
    const b = this.blobs.get(desc.digest);
    if (!b) throw new Error(`no blob ${desc.digest}`);
    return Readable.from([this.tamper(desc.digest, b)]);
  }
}

/** A sink that verifies like the store does and records the order of commits. */
class MemorySink implements ImageSink {
  readonly committed: string[] = [];
  readonly blobs = new Map<string, Buffer>();
  async has(desc: Descriptor): Promise<boolean> {
    return this.blobs.has(desc.digest);
  }
  async put(desc: Descriptor, data: Readable, opts: PutOptions = {}): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of data.pipe(verifyStream(desc))) {
      opts.onBytes?.((c as Buffer).length);
      chunks.push(c as Buffer);
    }
    this.blobs.set(desc.digest, Buffer.concat(chunks));
    this.committed.push(desc.digest);
  }
}

function allBlobs(img: TestImage | TestIndex): Map<string, Buffer> {
  const m = new Map<string, Buffer>(img.blobs);
  if ('indexDigest' in img) {
    m.set(img.indexDigest, img.indexBytes);
    for (const i of img.images) m.set(i.manifestDigest, i.manifestBytes);
  } else {
    m.set(img.manifestDigest, img.manifestBytes);
  }
  return m;
}

describe('copyImage', () => {
  it('copies config and layers before the manifest, each verified', async () => {
    const img = await smallImage();
    const src = new MemorySource(img.descriptor, allBlobs(img));
    const dst = new MemorySink();
    const events: CopyEvent[] = [];
    const r = await copyImage(src, dst, { onEvent: (e) => events.push(e) });
    expect(r.manifestDesc.digest).toBe(img.manifestDigest);
    expect(dst.committed.at(-1)).toBe(img.manifestDigest);
    expect(new Set(dst.committed)).toEqual(new Set([img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]));
    expect(events.filter((e) => e.type === 'blob-done' && e.kind === 'layer')).toHaveLength(img.layers.length);
  });

  it('skips blobs the sink has, and fetches nothing twice', async () => {
    const img = await smallImage();
    const blobs = allBlobs(img);
    const dst = new MemorySink();
    await copyImage(new MemorySource(img.descriptor, blobs), dst);
    const again = new MemorySource(img.descriptor, blobs);
    const events: CopyEvent[] = [];
    await copyImage(again, dst, { onEvent: (e) => events.push(e) });
    // Only the manifest and config (needed to know what to copy) are read again.
    expect(again.fetched.sort()).toEqual([img.manifestDigest, img.configDigest].sort());
    expect(events.filter((e) => e.type === 'blob-done').every((e) => e.type === 'blob-done' && e.existed)).toBe(true);
  });

  it('chooses the wanted platform from an index', async () => {
    const a = await smallImage({ platform: { os: 'linux', architecture: 'amd64' }, marker: 'a' });
    const b = await smallImage({ platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, marker: 'b' });
    const idx = buildIndex([a, b], 'oci');
    const r = await copyImage(new MemorySource(idx.descriptor, allBlobs(idx)), new MemorySink(), { platform: { os: 'linux', architecture: 'arm64' } });
    expect(r.manifestDesc.digest).toBe(b.manifestDigest);
    expect(r.index?.digest).toBe(idx.indexDigest);
  });

  it('does nothing for a signal that was aborted before the copy began', async () => {
    const img = await smallImage();
    const src = new MemorySource(img.descriptor, allBlobs(img));
    const dst = new MemorySink();
    const ac = new AbortController();
    ac.abort(new Error('stopped before the start'));
    await expect(copyImage(src, dst, { signal: ac.signal })).rejects.toThrow('stopped before the start');
    expect(src.fetched).toEqual([]);
  });

  it('refuses a layer whose bytes do not match, and commits no manifest', async () => {
    const img = await smallImage();
    const bad = img.layers[1]?.digest ?? '';
    const src = new MemorySource(img.descriptor, allBlobs(img), (d, b) => (d === bad ? Buffer.concat([b.subarray(0, -1), Buffer.from([b.at(-1)! ^ 1])]) : b));
    const dst = new MemorySink();
    const err = await copyImage(src, dst).catch((e: unknown) => e);
    expect(isS2nError(err) && err.code).toBe('EDIGEST');
    expect(dst.blobs.has(img.manifestDigest)).toBe(false);
    expect(dst.blobs.has(bad)).toBe(false);
  });

  it('refuses a config whose diff_ids do not match the layer count', async () => {
    const img = await buildImage({
      layers: [[file('a', '1')], [file('b', '2')]],
      mutateConfig: (c) => {
        (c as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids.pop();
      },
    });
    const err = await copyImage(new MemorySource(img.descriptor, allBlobs(img)), new MemorySink()).catch((e: unknown) => e);
    expect(isS2nError(err) && err.code).toBe('EMANIFEST');
    expect(String(err)).toMatch(/1 layer diff_ids but the manifest has 2 layers/);
  });

  it('refuses a manifest larger than the limit before reading it', async () => {
    const img = await smallImage();
    const huge: Descriptor = { ...img.descriptor, size: 64 * 1024 * 1024 };
    const err = await copyImage(new MemorySource(huge, allBlobs(img)), new MemorySink()).catch((e: unknown) => e);
    expect(isS2nError(err) && err.code).toBe('ELIMIT');
  });
});

describe('runBounded', () => {
  it('never runs more than the limit at once', async () => {
    let running = 0;
    let peak = 0;
    const tasks = Array.from({ length: 10 }, () => async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    });
    await runBounded(tasks, 3);
    expect(peak).toBe(3);
  });

  it('starts nothing after a failure, waits for running tasks, throws the first error', async () => {
    const started: number[] = [];
    let settled = 0;
    const tasks = Array.from({ length: 6 }, (_, i) => async () => {
      started.push(i);
      await new Promise((r) => setTimeout(r, i === 0 ? 1 : 20));
      settled++;
      if (i === 0) throw new Error('first');
    });
    let aborted = false;
    await expect(runBounded(tasks, 2, () => (aborted = true))).rejects.toThrow('first');
    expect(aborted).toBe(true);
    expect(started).toEqual([0, 1]);
    expect(settled).toBe(2);
  });
});

describe('copyImage on uncompressed layers', () => {
  it('accepts an uncompressed layer whose digest is its diff_id, refuses one that is not', async () => {
    const good = await buildImage({ layers: [[file('a', '1')]], compression: 'none' });
    await expect(copyImage(new MemorySource(good.descriptor, allBlobs(good)), new MemorySink())).resolves.toBeDefined();
    const bad = await buildImage({
      layers: [[file('a', '1')], [file('b', '2')]],
      compression: 'none',
      mutateConfig: (c) => {
        const ids = (c as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
        ids.reverse();
      },
    });
    const err = await copyImage(new MemorySource(bad.descriptor, allBlobs(bad)), new MemorySink()).catch((e: unknown) => e);
    expect(isS2nError(err) && err.code).toBe('EMANIFEST');
    expect(String(err)).toContain('uncompressed layer 0');
  });
});
