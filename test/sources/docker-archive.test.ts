/**
 * DockerArchiveSource over archives built in code: the synthesized manifest
 * (deterministic, OCI types, layers = diff_ids), Docker ≥ 25 archives whose
 * own manifests are preferred, selection by name, and the refusals.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it, onTestFinished } from 'vitest';
import { copyImage } from '../../src/copy.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { ImageManifest } from '../../src/oci/types.js';
import { readVerified } from '../../src/oci/verify.js';
import type { ArchiveReader } from '../../src/sources/archive/reader.js';
import { TarIndex } from '../../src/sources/archive/tar-index.js';
import { SpoolReader } from '../../src/sources/archive/tar-spool.js';
import { DockerArchive, DockerArchiveSource } from '../../src/sources/docker-archive.js';
import { ContentStore } from '../../src/store/store.js';
import { dockerSaveEntries, rawLayer, tarBytes, type RawTarEntry, type SavedImage } from '../helpers/archives.js';
import { tempDir } from '../helpers/cli.js';
import { buildImage, dir, file, sha256, smallImage, type TestImage } from '../helpers/images.js';

async function readerOf(entries: RawTarEntry[], mode: 'file' | 'stream' = 'file'): Promise<ArchiveReader> {
  const bytes = tarBytes(entries);
  let r: ArchiveReader;
  if (mode === 'stream') {
    const d = tempDir();
    let n = 0;
    r = await SpoolReader.read(Readable.from([bytes]), 'save.tar', { spoolPath: () => join(d, String(n++)), memoryEntryMax: 100 });
  } else {
    const p = join(tempDir(), 'save.tar');
    writeFileSync(p, bytes);
    r = await TarIndex.open(p, 'save.tar');
  }
  onTestFinished(() => r.close());
  return r;
}

async function open(images: SavedImage[], o: { layout?: 'classic' | 'docker25'; mode?: 'file' | 'stream'; edit?: (e: RawTarEntry[]) => void } = {}): Promise<DockerArchive> {
  const entries = dockerSaveEntries(images, { layout: o.layout ?? 'classic' });
  o.edit?.(entries);
  return DockerArchive.open(await readerOf(entries, o.mode));
}

async function manifestOf(src: DockerArchiveSource): Promise<ImageManifest> {
  const root = await src.resolve();
  return JSON.parse((await readVerified(await src.fetch(root), root, 1 << 20)).toString('utf8')) as ImageManifest;
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a failure');
}

function replaceEntry(entries: RawTarEntry[], name: string, data: Buffer | string): void {
  const e = entries.find((x) => x.name === name);
  if (!e) throw new Error(`no entry ${name}`);
  e.data = data;
}

describe('DockerArchiveSource (classic docker save)', () => {
  it('synthesizes a deterministic OCI manifest whose layers are the diff_ids', async () => {
    const img = await smallImage();
    const a = await open([{ image: img, tags: ['app:1'] }]);
    expect(a.listImages()).toMatchObject([{ index: 0, repoTags: ['app:1'] }]);
    const src = a.source(0);
    const m = await manifestOf(src);
    expect(m.mediaType).toBe(MediaType.ociManifest);
    expect(m.config).toEqual({ mediaType: MediaType.ociConfig, digest: img.configDigest, size: img.configBytes.length });
    expect(m.layers.map((l) => l.digest)).toEqual(img.config.rootfs.diff_ids);
    expect(m.layers.every((l) => l.mediaType === MediaType.ociLayer)).toBe(true);
    expect(m.layers.map((l) => l.size)).toEqual(img.layers.map((_, i) => rawLayer(img, i).length));
    expect(await src.manifestFromArchive()).toBe(false);
    // The same archive opened again (and streamed) gives the same digest.
    const again = await (await open([{ image: img, tags: ['app:1'] }], { mode: 'stream' })).source(0).resolve();
    expect(again).toEqual(await src.resolve());
  });

  it('copies into a store: layers stored as they are, config as is', async () => {
    const img = await smallImage();
    const src = (await open([{ image: img, tags: ['app:1'] }])).source('app:1');
    const store = await ContentStore.open(join(tempDir(), 'store'));
    const r = await store.withLease(() => copyImage(src, store));
    expect(r.configDesc.digest).toBe(img.configDigest);
    for (let i = 0; i < img.layers.length; i++) {
      const raw = rawLayer(img, i);
      expect(await store.readBlob({ mediaType: MediaType.ociLayer, digest: sha256(raw), size: raw.length }, 1 << 20)).toEqual(raw);
    }
  });

  it('selects by RepoTag as written or normalised, lists names when not found', async () => {
    const a1 = await smallImage({ marker: 'one' });
    const a2 = await smallImage({ marker: 'two' });
    const a = await open([{ image: a1, tags: ['one:1'] }, { image: a2, tags: ['localhost:5000/two:2', 'two:latest'] }]);
    expect(a.source('docker.io/library/one:1').image.index).toBe(0);
    expect(a.source('two').image.index).toBe(1);
    expect(a.source('localhost:5000/two:2').image.index).toBe(1);
    const e = (() => {
      try {
        a.source('three');
      } catch (err) {
        return err as { code: string; hint: string };
      }
      throw new Error('no error');
    })();
    expect(e.code).toBe('EIMAGE');
    expect(e.hint).toContain('one:1, localhost:5000/two:2, two:latest');
  });

  it('follows the symlink docker save writes for a layer two images share', async () => {
    const base = [dir('etc/'), file('etc/os-release', 'ID=shared\n')];
    const x = await buildImage({ layers: [base, [file('x', 'x')]] });
    const y = await buildImage({ layers: [base, [file('y', 'y')]] });
    const entries = dockerSaveEntries([{ image: x, tags: ['x:1'] }, { image: y, tags: ['y:1'] }]);
    expect(entries.some((e) => e.type === 'symlink')).toBe(true);
    const a = await DockerArchive.open(await readerOf(entries));
    const store = await ContentStore.open(join(tempDir(), 'store'));
    const r = await store.withLease(() => copyImage(a.source('y:1'), store));
    expect(r.manifest.layers[0]?.digest).toBe(y.config.rootfs.diff_ids[0]);
  });

  it('keeps the digest of a compressed layer (some tools write them)', async () => {
    const img = await smallImage();
    const a = await open([{ image: img, tags: ['app:1'] }], {
      edit: (entries) => {
        const layer = entries.find((e) => e.name.endsWith('/layer.tar') && e.type === undefined);
        if (!layer) throw new Error('no layer');
        layer.data = gzipSync(layer.data as Buffer);
      },
    });
    const m = await manifestOf(a.source(0));
    expect(m.layers[0]?.mediaType).toBe(MediaType.ociLayerGzip);
    expect(m.layers[0]?.digest).not.toBe(img.config.rootfs.diff_ids[0]);
  });
});

describe('DockerArchiveSource (Docker ≥ 25 layout)', () => {
  it("uses the archive's own manifest and finds untagged images through manifest.json", async () => {
    const a1 = await smallImage({ marker: 'a' });
    const a2 = await smallImage({ marker: 'b' });
    const entries = dockerSaveEntries([{ image: a1, tags: ['app:1'] }, { image: a2 }], { layout: 'docker25' });
    const index = JSON.parse(String(entries.find((e) => e.name === 'index.json')?.data)) as { manifests: Array<{ digest: string }> };
    const a = await DockerArchive.open(await readerOf(entries));
    expect(a.listImages().map((i) => i.repoTags)).toEqual([['app:1'], []]);
    const src = a.source(0);
    expect((await src.resolve()).digest).toBe(index.manifests[0]?.digest);
    expect(await src.manifestFromArchive()).toBe(true);
    // Not in index.json: synthesized, which gives the manifest Docker ≥ 25 writes.
    const untagged = a.source(1);
    expect(await untagged.manifestFromArchive()).toBe(false);
    const store = await ContentStore.open(join(tempDir(), 'store'));
    await store.withLease(async () => {
      await copyImage(src, store);
      await copyImage(untagged, store);
    });
  });

  it('falls back to manifest.json when the index manifest disagrees with the config (Docker 25.0.0 wrote no layers)', async () => {
    const img = await smallImage();
    const entries = dockerSaveEntries([{ image: img, tags: ['app:1'] }], { layout: 'docker25' });
    const idx = JSON.parse(String(entries.find((e) => e.name === 'index.json')?.data)) as { manifests: Array<{ digest: string; size: number }> };
    const entry = idx.manifests[0];
    if (!entry) throw new Error('no index entry');
    const broken = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: img.configDigest, size: img.configBytes.length }, layers: [] }));
    entries.push({ name: `blobs/sha256/${sha256(broken).slice(7)}`, data: broken });
    entry.digest = sha256(broken);
    entry.size = broken.length;
    replaceEntry(entries, 'index.json', JSON.stringify(idx));
    const src = (await DockerArchive.open(await readerOf(entries))).source(0);
    expect(await src.manifestFromArchive()).toBe(false);
    expect((await manifestOf(src)).layers).toHaveLength(2);
  });
});

describe('DockerArchiveSource refusals', () => {
  it('refuses a config whose diff_ids do not match the number of layers', async () => {
    const img = await smallImage();
    const a = await open([{ image: img, tags: ['app:1'] }], {
      edit: (entries) => {
        const m = JSON.parse(String(entries.find((e) => e.name === 'manifest.json')?.data)) as Array<{ Layers: string[] }>;
        m[0]?.Layers.pop();
        replaceEntry(entries, 'manifest.json', JSON.stringify(m));
      },
    });
    const e = await failure(a.source(0).resolve());
    expect(e.code).toBe('EARCHIVE');
    expect(e.message).toMatch(/config lists 2 layer diff_ids but manifest.json lists 1 layers/);
  });

  it('fails reading a layer whose bytes are not its diff_id', async () => {
    const img = await smallImage();
    const a = await open([{ image: img, tags: ['app:1'] }], {
      edit: (entries) => {
        const layer = entries.find((e) => e.name.endsWith('/layer.tar') && e.type === undefined);
        if (layer) layer.data = Buffer.concat([layer.data as Buffer, Buffer.alloc(512)]);
      },
    });
    const src = a.source(0);
    const m = await manifestOf(src);
    const layer = m.layers[0];
    if (!layer) throw new Error('no layer');
    const e = await failure(readVerified(await src.fetch(layer), layer, 1 << 20));
    expect(e.code).toBe('EDIGEST');
    expect(e.message).toMatch(/layer ".*\/layer.tar" does not match its config/);
  });

  it('refuses a missing layer, a missing config, an oversized or malformed manifest.json', async () => {
    const img = await smallImage();
    const missingLayer = await open([{ image: img, tags: ['app:1'] }], {
      edit: (entries) => {
        const i = entries.findIndex((e) => e.name.endsWith('/layer.tar'));
        entries.splice(i, 1);
      },
    });
    expect((await failure(missingLayer.source(0).resolve())).message).toMatch(/layer ".*layer.tar" is missing/);
    const missingConfig = await open([{ image: img, tags: ['app:1'] }], {
      edit: (entries) => void entries.splice(entries.findIndex((e) => e.name.endsWith('.json') && e.name !== 'manifest.json'), 1),
    });
    expect((await failure(missingConfig.source(0).resolve())).message).toMatch(/image config ".*\.json" is missing/);
    const huge = dockerSaveEntries([{ image: img, tags: ['app:1'] }]);
    replaceEntry(huge, 'manifest.json', Buffer.alloc(9 * 1024 * 1024, 0x20));
    expect(await failure(DockerArchive.open(await readerOf(huge)))).toMatchObject({ code: 'ELIMIT' });
    for (const bad of ['{}', '[]', '[{"Layers":[]}]', '[{"Config":"../x.json","Layers":[]}]', 'not json']) {
      const entries = dockerSaveEntries([{ image: img }]);
      replaceEntry(entries, 'manifest.json', bad);
      expect((await failure(DockerArchive.open(await readerOf(entries)))).code, bad).toMatch(/^(EARCHIVE|EUNSAFEPATH)$/);
    }
  });

  it('says a streamed blob is already verified when the spool hashed it', async () => {
    const img: TestImage = await smallImage();
    const src = (await open([{ image: img, tags: ['app:1'] }], { mode: 'stream' })).source(0);
    const m = await manifestOf(src);
    for (const l of m.layers) expect(await src.contentMatches(l)).toBe(true);
    expect(await src.contentMatches({ ...m.config })).toBe(true);
    const tampered = (await open([{ image: img, tags: ['app:1'] }], {
      mode: 'stream',
      edit: (entries) => {
        const layer = entries.find((e) => e.name.endsWith('/layer.tar') && e.type === undefined);
        if (layer) layer.data = Buffer.concat([layer.data as Buffer, Buffer.alloc(512)]);
      },
    })).source(0);
    const tm = await manifestOf(tampered);
    expect(await Promise.all(tm.layers.map((l) => tampered.contentMatches(l)))).toContain(false);
  });
});
