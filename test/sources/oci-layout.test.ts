/**
 * OciLayoutSource over a layout directory (DirReader) and an oci-archive
 * (TarIndex): entry selection by ref.name, resolve() without the layout's
 * annotations, nested indexes left to the copy engine, and refusals.
 */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { copyImage } from '../../src/copy.js';
import { DirReader } from '../../src/sources/archive/dir-reader.js';
import type { ArchiveReader } from '../../src/sources/archive/reader.js';
import { TarIndex } from '../../src/sources/archive/tar-index.js';
import { OciLayout } from '../../src/sources/oci-layout.js';
import { ContentStore } from '../../src/store/store.js';
import { ociArchive, writeOciLayout, type LayoutImage } from '../helpers/archives.js';
import { tempDir } from '../helpers/cli.js';
import { buildIndex, smallImage } from '../helpers/images.js';

type Kind = 'dir' | 'archive';

async function layoutReader(images: LayoutImage[], kind: Kind): Promise<ArchiveReader> {
  let r: ArchiveReader;
  if (kind === 'dir') r = await DirReader.open(await writeOciLayout(join(tempDir(), 'layout'), images));
  else {
    const p = join(tempDir(), 'oci.tar');
    writeFileSync(p, ociArchive(images));
    r = await TarIndex.open(p);
  }
  onTestFinished(() => r.close());
  return r;
}

async function failure(p: Promise<unknown> | (() => unknown)): Promise<{ code: string; message: string; hint?: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a failure');
}

describe.each<Kind>(['dir', 'archive'])('OciLayoutSource (%s)', (kind) => {
  it('opens the only entry without a name and resolves it without the layout annotations', async () => {
    const img = await smallImage();
    const layout = await OciLayout.open(await layoutReader([{ image: img, refName: 'latest' }], kind));
    const src = layout.source();
    expect(await src.resolve()).toEqual({ mediaType: img.mediaType, digest: img.manifestDigest, size: img.manifestBytes.length });
    const store = await ContentStore.open(join(tempDir(), 'store'));
    const r = await store.withLease(() => copyImage(src, store));
    expect(r.manifestDesc.digest).toBe(img.manifestDigest);
  });

  it('picks an entry by ref.name (short and full), lists the names otherwise', async () => {
    const a = await smallImage({ marker: 'a' });
    const b = await smallImage({ marker: 'b' });
    const layout = await OciLayout.open(
      await layoutReader([{ image: a, refName: 'latest' }, { image: b, refName: 'localhost/b:2', annotations: { 'io.containerd.image.name': 'localhost/b:2' } }], kind),
    );
    expect(layout.listImages().map((i) => [i.refName, i.imageName])).toEqual([
      ['latest', undefined],
      ['localhost/b:2', 'localhost/b:2'],
    ]);
    expect((await layout.source('latest').resolve()).digest).toBe(a.manifestDigest);
    expect((await layout.source('localhost/b:2').resolve()).digest).toBe(b.manifestDigest);
    const none = await failure(() => layout.source());
    expect(none.code).toBe('EIMAGE');
    expect(none.hint).toContain('latest, localhost/b:2');
    expect((await failure(() => layout.source('nope'))).code).toBe('EIMAGE');
  });

  it('hands a multi-platform index to the copy engine, which picks the platform', async () => {
    const amd = await smallImage({ platform: { os: 'linux', architecture: 'amd64' }, marker: 'amd' });
    const arm = await smallImage({ platform: { os: 'linux', architecture: 'arm64' }, marker: 'arm' });
    const idx = buildIndex([amd, arm], 'oci');
    const src = (await OciLayout.open(await layoutReader([{ image: idx, refName: 'multi' }], kind))).source('multi');
    expect((await src.resolve()).digest).toBe(idx.indexDigest);
    const store = await ContentStore.open(join(tempDir(), 'store'));
    const r = await store.withLease(() => copyImage(src, store, { platform: { os: 'linux', architecture: 'arm64' } }));
    expect(r.manifestDesc.digest).toBe(arm.manifestDigest);
    expect(r.index?.digest).toBe(idx.indexDigest);
  });

  it('says which blob is missing', async () => {
    const img = await smallImage();
    const images = [{ image: img, refName: 'latest' }];
    let reader: ArchiveReader;
    if (kind === 'dir') {
      const d = await writeOciLayout(join(tempDir(), 'layout'), images);
      rmSync(join(d, 'blobs', 'sha256', img.configDigest.slice(7)));
      reader = await DirReader.open(d);
      onTestFinished(() => reader.close());
    } else {
      // An archive without the config blob: rebuild from a layout missing it.
      img.blobs.delete(img.configDigest);
      reader = await layoutReader(images, kind);
    }
    const store = await ContentStore.open(join(tempDir(), 'store'));
    const src = (await OciLayout.open(reader)).source();
    const e = await failure(store.withLease(() => copyImage(src, store)));
    expect(e.code).toBe('EARCHIVE');
    expect(e.message).toMatch(/blob sha256:[0-9a-f]{12}… is not in the archive/);
  });
});

describe('OciLayout refusals', () => {
  it('refuses an unknown layout version and a missing index', async () => {
    const d = join(tempDir(), 'layout');
    mkdirSync(d);
    writeFileSync(join(d, 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    writeFileSync(join(d, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
    const r = await DirReader.open(d);
    expect(await failure(OciLayout.open(r))).toMatchObject({ code: 'EARCHIVE', message: expect.stringMatching(/version "2.0.0" is not supported/) as unknown });
    writeFileSync(join(d, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    expect(await failure(OciLayout.open(r))).toMatchObject({ code: 'EARCHIVE', message: expect.stringMatching(/lists no images/) as unknown });
  });

  it('refuses a symlink that leaves the layout directory', async () => {
    const img = await smallImage();
    const d = await writeOciLayout(join(tempDir(), 'layout'), [{ image: img, refName: 'latest' }]);
    const outside = join(tempDir(), 'secret');
    writeFileSync(outside, 'secret');
    const hex = img.configDigest.slice(7);
    rmSync(join(d, 'blobs', 'sha256', hex));
    symlinkSync(outside, join(d, 'blobs', 'sha256', hex));
    const r = await DirReader.open(d);
    expect((await failure(r.stat(`blobs/sha256/${hex}`))).code).toBe('EUNSAFEPATH');
    expect((await failure(r.stat('../secret'))).code).toBe('EUNSAFEPATH');
  });
});
