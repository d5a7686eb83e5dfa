import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S2nError } from '../../src/errors.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { Annotation, type Descriptor } from '../../src/oci/types.js';
import { ContentStore, defaultStoreRoot, isValidRefName } from '../../src/store/store.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { blob, sha256 } from './util.js';

let dir: string;
let root: string;
beforeEach(async () => {
  dir = await makeTempDir('s2n-store-');
  root = join(dir, 'store');
});
afterEach(async () => {
  await removeDir(dir);
});

async function expectCode(p: Promise<unknown>, code: string): Promise<S2nError> {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(S2nError);
  expect((e as S2nError).code).toBe(code);
  return e as S2nError;
}

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

const ingestFiles = async (): Promise<string[]> => readdir(join(root, 'ingest'));
const blobFiles = async (): Promise<string[]> => readdir(join(root, 'blobs', 'sha256'));

describe('defaultStoreRoot', () => {
  it('prefers S2N_OCI_ROOT, then root, then XDG_DATA_HOME, then ~/.local/share', () => {
    expect(defaultStoreRoot({ S2N_OCI_ROOT: '/x', HOME: '/h' }, 0)).toBe('/x');
    expect(defaultStoreRoot({ HOME: '/h', XDG_DATA_HOME: '/d' }, 0)).toBe('/var/lib/s2n-oci');
    expect(defaultStoreRoot({ HOME: '/h', XDG_DATA_HOME: '/d' }, 1000)).toBe('/d/s2n-oci');
    expect(defaultStoreRoot({ HOME: '/h', XDG_DATA_HOME: 'relative' }, 1000)).toBe('/h/.local/share/s2n-oci');
    expect(defaultStoreRoot({ HOME: '/h' }, 1000)).toBe('/h/.local/share/s2n-oci');
  });
});

describe('ContentStore.open', () => {
  it('creates an OCI image layout', async () => {
    await ContentStore.open(root);
    expect(JSON.parse(await readFile(join(root, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(JSON.parse(await readFile(join(root, 'index.json'), 'utf8'))).toEqual({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [],
    });
    for (const d of ['blobs/sha256', 'ingest', 'locks', 'leases']) expect(existsSync(join(root, d))).toBe(true);
  });

  it('is idempotent and safe when many open a fresh root at once', async () => {
    const stores = await Promise.all(Array.from({ length: 10 }, () => ContentStore.open(root)));
    expect(stores).toHaveLength(10);
    await ContentStore.open(root);
    expect((await readdir(root)).sort()).toEqual(['blobs', 'index.json', 'ingest', 'leases', 'locks', 'oci-layout']);
  });

  it('refuses a foreign layout version', async () => {
    await mkdir(root);
    await writeFile(join(root, 'oci-layout'), '{"imageLayoutVersion":"9.0.0"}');
    const e = await expectCode(ContentStore.open(root), 'ESTORE');
    expect(e.message).toContain('9.0.0');
    expect(e.hint).toMatch(/--root/);
  });

  it('refuses a non-empty directory that is not a layout', async () => {
    await mkdir(root);
    await writeFile(join(root, 'notes.txt'), 'mine');
    await expectCode(ContentStore.open(root), 'ESTORE');
  });

  it('opens a layout another tool created, keeping its index', async () => {
    await mkdir(join(root, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(root, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    const m = blob('{}', MediaType.ociManifest).desc;
    await writeFile(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...m, annotations: { [Annotation.refName]: 'v1' } }] }));
    const store = await ContentStore.open(root);
    expect(await store.resolveName('v1')).toMatchObject({ digest: m.digest });
  });
});

describe('blobs', () => {
  it('put → has → open/readBlob round trip, with progress', async () => {
    const store = await ContentStore.open(root);
    const { desc, bytes } = blob(randomBytes(300_000));
    expect(await store.has(desc)).toBe(false);
    let seen = 0;
    const chunks = [bytes.subarray(0, 100_000), bytes.subarray(100_000)];
    await store.put(desc, Readable.from(chunks), { onBytes: (n) => (seen += n) });
    expect(seen).toBe(bytes.length);
    expect(await store.has(desc)).toBe(true);
    expect(await store.has({ ...desc, size: desc.size + 1 })).toBe(false);
    expect((await collect(store.open(desc))).equals(bytes)).toBe(true);
    expect((await collect(store.open(desc.digest))).equals(bytes)).toBe(true);
    expect((await store.readBlob(desc, 1 << 20)).equals(bytes)).toBe(true);
    expect(store.blobPath(desc.digest)).toBe(join(root, 'blobs', 'sha256', desc.digest.slice(7)));
    expect(await ingestFiles()).toEqual([]);
  });

  it('putBytes stores small blobs', async () => {
    const store = await ContentStore.open(root);
    const { desc, bytes } = blob('{"a":1}', MediaType.ociConfig);
    await store.putBytes(desc, bytes);
    expect((await store.readBlob(desc, 100)).toString()).toBe('{"a":1}');
  });

  it('a digest mismatch is EDIGEST and leaves nothing behind', async () => {
    const store = await ContentStore.open(root);
    const good = blob('the right bytes');
    const bad = Buffer.from('the wrong bytes'); // same length
    await expectCode(store.put(good.desc, Readable.from([bad])), 'EDIGEST');
    expect(await store.has(good.desc)).toBe(false);
    expect(await blobFiles()).toEqual([]);
    expect(await ingestFiles()).toEqual([]);
  });

  it('a size mismatch is ESIZE (short and long), leaving nothing behind', async () => {
    const store = await ContentStore.open(root);
    const { desc, bytes } = blob('0123456789');
    await expectCode(store.put(desc, Readable.from([bytes.subarray(0, 5)])), 'ESIZE');
    await expectCode(store.put(desc, Readable.from([bytes, Buffer.from('extra')])), 'ESIZE');
    expect(await blobFiles()).toEqual([]);
    expect(await ingestFiles()).toEqual([]);
  });

  it('a bad digest string is EDIGEST, not a path outside the store', async () => {
    const store = await ContentStore.open(root);
    const desc = { mediaType: 'x', digest: 'sha256:../../../etc/passwd', size: 1 } as unknown as Descriptor;
    await expectCode(store.put(desc, Readable.from([Buffer.from('x')])), 'EDIGEST');
    expect(() => store.blobPath('md5:abc')).toThrow(S2nError);
  });

  it('an error from the source stream propagates and leaves nothing behind', async () => {
    const store = await ContentStore.open(root);
    const { desc } = blob(randomBytes(1000));
    const data = new PassThrough();
    const p = store.put(desc, data);
    data.write(Buffer.alloc(10));
    setTimeout(() => data.destroy(new Error('connection reset')), 20);
    await expect(p).rejects.toThrow('connection reset');
    expect(await ingestFiles()).toEqual([]);
    expect(await blobFiles()).toEqual([]);
  });

  it('abort through opts.signal stops the write and cleans up', async () => {
    const store = await ContentStore.open(root);
    const { desc } = blob(randomBytes(1000));
    const data = new PassThrough();
    const ac = new AbortController();
    const p = store.put(desc, data, { signal: ac.signal });
    data.write(Buffer.alloc(10));
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(await ingestFiles()).toEqual([]);
    expect(await blobFiles()).toEqual([]);
  });

  it('putting an existing blob is success and does not read the stream', async () => {
    const store = await ContentStore.open(root);
    const { desc, bytes } = blob('same');
    await store.putBytes(desc, bytes);
    const data = new PassThrough();
    await store.put(desc, data);
    expect(data.destroyed).toBe(true);
    expect(await blobFiles()).toHaveLength(1);
  });

  it('many concurrent puts of one blob all succeed, leaving one blob', async () => {
    const store = await ContentStore.open(root);
    const { desc, bytes } = blob(randomBytes(200_000));
    const chunked = (): Readable => Readable.from(Array.from({ length: 20 }, (_, i) => bytes.subarray(i * 10_000, (i + 1) * 10_000)));
    await Promise.all(Array.from({ length: 16 }, () => store.put(desc, chunked())));
    expect(await blobFiles()).toEqual([desc.digest.slice(7)]);
    expect((await store.readBlob(desc, 1 << 20)).equals(bytes)).toBe(true);
    expect(await ingestFiles()).toEqual([]);
  });

  it('stores sha512 blobs under blobs/sha512', async () => {
    const store = await ContentStore.open(root);
    const bytes = Buffer.from('five twelve');
    const { createHash } = await import('node:crypto');
    const desc: Descriptor = { mediaType: 'x', digest: `sha512:${createHash('sha512').update(bytes).digest('hex')}`, size: bytes.length };
    await store.putBytes(desc, bytes);
    expect(existsSync(join(root, 'blobs', 'sha512', desc.digest.slice(7)))).toBe(true);
  });

  it('open of a missing blob throws ESTORE with a re-pull hint; readBlob checks content', async () => {
    const store = await ContentStore.open(root);
    const { desc, bytes } = blob('content');
    const e = await expectCode(Promise.resolve().then(() => store.open(desc)), 'ESTORE');
    expect(e.hint).toMatch(/pull/);
    await expectCode(store.readBlob(desc, 100), 'ESTORE');
    await store.putBytes(desc, bytes);
    await writeFile(store.blobPath(desc.digest), 'CONTENT'); // damaged on disk behind our back
    const d = await expectCode(store.readBlob(desc, 100), 'EDIGEST');
    expect(d.hint).toMatch(/pull the image again/);
    await expectCode(store.readBlob(desc, 3), 'ELIMIT');
    // Longer or shorter on disk than its descriptor says: ESIZE, the stored copy blamed.
    await writeFile(store.blobPath(desc.digest), `${'x'.repeat(5000)}`);
    const long = await expectCode(store.readBlob(desc, 100), 'ESIZE');
    expect(long.hint).toMatch(/pull the image again/);
    await writeFile(store.blobPath(desc.digest), 'con');
    await expectCode(store.readBlob(desc, 100), 'ESIZE');
  });

  it('readBlob with verify: false (a warm run) checks the size and limit, not the digest', async () => {
    const store = await ContentStore.open(root);
    const { desc, bytes } = blob('content');
    await store.putBytes(desc, bytes);
    expect((await store.readBlob(desc, 100, { verify: false })).equals(bytes)).toBe(true);
    await writeFile(store.blobPath(desc.digest), 'CONTENT'); // same size: only a re-hash would see it
    expect((await store.readBlob(desc, 100, { verify: false })).toString()).toBe('CONTENT');
    await expectCode(store.readBlob(desc, 100), 'EDIGEST');
    await writeFile(store.blobPath(desc.digest), 'content and more');
    const long = await expectCode(store.readBlob(desc, 100, { verify: false }), 'ESIZE');
    expect(long.hint).toMatch(/pull the image again/);
    await writeFile(store.blobPath(desc.digest), 'con');
    await expectCode(store.readBlob(desc, 100, { verify: false }), 'ESIZE');
    await expectCode(store.readBlob(desc, 3, { verify: false }), 'ELIMIT');
    await expectCode(store.readBlob({ ...desc, size: -1 }, 100, { verify: false }), 'ESIZE');
  });

  it('diskUsage counts blobs', async () => {
    const store = await ContentStore.open(root);
    await store.putBytes(blob('aaaa').desc, Buffer.from('aaaa'));
    await store.putBytes(blob('bb').desc, Buffer.from('bb'));
    expect(await store.diskUsage()).toEqual({ blobs: 2, blobBytes: 6, ingestBytes: 0 });
  });
});

describe('names', () => {
  const m1 = blob('{"m":1}', MediaType.ociManifest).desc;
  const m2 = blob('{"m":2}', MediaType.ociManifest).desc;

  it('tag writes ref.name and image.name; resolve, list, re-tag, untag', async () => {
    const store = await ContentStore.open(root);
    await store.tag('docker.io/library/alpine:latest', m1, { [Annotation.indexDigest]: sha256('idx') });
    await store.tag('127.0.0.1:5000/app@' + m2.digest, m2);
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    expect(index.manifests[0]).toEqual({
      ...m1,
      annotations: {
        [Annotation.refName]: 'docker.io/library/alpine:latest',
        [Annotation.imageName]: 'docker.io/library/alpine:latest',
        [Annotation.indexDigest]: sha256('idx'),
      },
    });
    expect(await store.resolveName('docker.io/library/alpine:latest')).toMatchObject({ digest: m1.digest });
    expect(await store.resolveName('docker.io/library/alpine:3')).toBeUndefined();
    expect((await store.list()).map((e) => e.name)).toEqual(['docker.io/library/alpine:latest', `127.0.0.1:5000/app@${m2.digest}`]);

    // Re-tag replaces in place: one entry per name.
    await store.tag('docker.io/library/alpine:latest', m2);
    const list = await store.list();
    expect(list).toHaveLength(2);
    expect(list[0]).toMatchObject({ name: 'docker.io/library/alpine:latest', descriptor: { digest: m2.digest } });

    expect(await store.untag('docker.io/library/alpine:latest')).toMatchObject({ digest: m2.digest });
    expect(await store.untag('docker.io/library/alpine:latest')).toBeUndefined();
    expect(await store.list()).toHaveLength(1);
    expect(await ingestFiles()).toEqual([]); // index temp files are gone
  });

  it('ref names follow the image-spec grammar; others are stored by image.name only', async () => {
    expect(isValidRefName('docker.io/library/alpine:latest')).toBe(true);
    expect(isValidRefName(`127.0.0.1:5000/app@${m1.digest}`)).toBe(true);
    expect(isValidRefName('localhost:5000/my_app:v1.2-rc+b')).toBe(true);
    expect(isValidRefName('example.com/a__b:latest')).toBe(false);
    expect(isValidRefName('example.com/app:v1-')).toBe(false);
    const store = await ContentStore.open(root);
    await store.tag('example.com/a__b:latest', m1);
    const d = await store.resolveName('example.com/a__b:latest');
    expect(d?.annotations?.[Annotation.refName]).toBeUndefined();
    expect(d?.annotations?.[Annotation.imageName]).toBe('example.com/a__b:latest');
    await expectCode(store.tag('has space', m1), 'EREFERENCE');
    await expectCode(store.tag('', m1), 'EREFERENCE');
  });

  it('findByDigest: full digest, 12+ hex prefix, ambiguity', async () => {
    const store = await ContentStore.open(root);
    await store.tag('a:1', m1);
    await store.tag('a:2', m1);
    await store.tag('b:1', m2);
    expect((await store.findByDigest(m1.digest)).map((e) => e.name)).toEqual(['a:1', 'a:2']);
    expect((await store.findByDigest(m2.digest.slice(7, 19))).map((e) => e.name)).toEqual(['b:1']);
    expect((await store.findByDigest(`sha256:${m2.digest.slice(7, 20)}`)).map((e) => e.name)).toEqual(['b:1']);
    expect(await store.findByDigest('000000000000')).toEqual([]);
    await expectCode(store.findByDigest('abc'), 'EUSAGE');

    // Two digests sharing a 12-digit prefix (hand-made, the index is just JSON).
    const hex = m1.digest.slice(7);
    const twin = { ...m1, digest: `sha256:${hex.slice(0, 12)}${'0'.repeat(52)}` as const };
    await store.tag('twin:1', twin);
    await expectCode(store.findByDigest(hex.slice(0, 12)), 'EIMAGE');
    expect(await store.findByDigest(hex.slice(0, 13))).toHaveLength(hex[12] === '0' ? 1 : 2);
  });

  it('a damaged index.json is ESTORE with a hint', async () => {
    const store = await ContentStore.open(root);
    await writeFile(join(root, 'index.json'), '{"schemaVersion":2,');
    const e = await expectCode(store.list(), 'ESTORE');
    expect(e.hint).toBeTruthy();
  });

  it('keeps foreign entries and index annotations on write-back', async () => {
    const store = await ContentStore.open(root);
    const foreign = { mediaType: 'application/xml', digest: sha256('x'), size: 1, annotations: { 'org.example': 'y' } };
    await writeFile(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [foreign], annotations: { keep: 'me' } }));
    await store.tag('a:1', m1);
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as { manifests: unknown[]; annotations: unknown };
    expect(index.manifests[0]).toEqual(foreign);
    expect(index.annotations).toEqual({ keep: 'me' });
    expect((await store.list()).map((e) => e.name)).toEqual(['a:1']);
  });
});

describe('store as an ImageSource', () => {
  it('resolves a name and fetches blobs', async () => {
    const store = await ContentStore.open(root);
    const { desc, bytes } = blob('{"schemaVersion":2}', MediaType.ociManifest);
    await store.putBytes(desc, bytes);
    await store.tag('docker.io/library/x:1', desc, { [Annotation.indexDigest]: sha256('i') });
    const src = store.source('docker.io/library/x:1');
    expect(src.description).toContain('docker.io/library/x:1');
    const root0 = await src.resolve();
    expect(root0).toEqual({ ...desc, annotations: { [Annotation.indexDigest]: sha256('i') } });
    expect((await collect(await src.fetch(root0))).equals(bytes)).toBe(true);
    const e = await expectCode(store.source('docker.io/library/nope:1').resolve(), 'EIMAGE');
    expect(e.message).toContain('not found in the store');
    expect(e.hint).toContain('s2n-oci pull docker.io/library/nope:1');
  });
});
