import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { S2nError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { Descriptor, Digest } from '../../src/oci/types.js';
import { createHasher, readVerified, verifyStream } from '../../src/oci/verify.js';

function descFor(data: Buffer, mediaType: string = MediaType.ociLayerGzip): Descriptor {
  return { mediaType, digest: sha256Digest(data), size: data.length };
}

/** Pipe chunks through verifyStream; resolve with what came out, or the error. */
async function run(desc: Descriptor, chunks: Buffer[]): Promise<{ out: Buffer; err?: unknown }> {
  const got: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      cb();
    },
  });
  try {
    await pipeline(Readable.from(chunks), verifyStream(desc), sink);
    return { out: Buffer.concat(got) };
  } catch (err) {
    return { out: Buffer.concat(got), err };
  }
}

function expectS2n(err: unknown, code: string): S2nError {
  expect(err).toBeInstanceOf(S2nError);
  const e = err as S2nError;
  expect(e.code).toBe(code);
  return e;
}

const DATA = Buffer.from('0123456789abcdefghij'); // 20 bytes

describe('verifyStream', () => {
  it('passes matching content through unchanged', async () => {
    const r = await run(descFor(DATA), [DATA.subarray(0, 7), DATA.subarray(7, 8), DATA.subarray(8)]);
    expect(r.err).toBeUndefined();
    expect(r.out.equals(DATA)).toBe(true);
  });

  it('accepts an empty blob', async () => {
    const r = await run(descFor(Buffer.alloc(0)), []);
    expect(r.err).toBeUndefined();
    expect(r.out.length).toBe(0);
  });

  it('verifies sha512 descriptors', async () => {
    const digest = `sha512:${createHash('sha512').update(DATA).digest('hex')}` as Digest;
    const ok = await run({ mediaType: MediaType.ociLayer, digest, size: 20 }, [DATA]);
    expect(ok.err).toBeUndefined();
    const bad = await run({ mediaType: MediaType.ociLayer, digest, size: 20 }, [Buffer.from('x'.repeat(20))]);
    const e = expectS2n(bad.err, 'EDIGEST');
    expect(String(e.context['actual'])).toMatch(/^sha512:/);
  });

  it('fails short content with ESIZE at the end', async () => {
    const desc = descFor(DATA);
    const r = await run(desc, [DATA.subarray(0, 10)]);
    const e = expectS2n(r.err, 'ESIZE');
    expect(e.message).toBe(`verify layer sha256:${desc.digest.slice(7, 19)}…: got 10 bytes, expected 20`);
    expect(e.hint).toMatch(/different content than its manifest promised/);
    expect(e.context).toMatchObject({ digest: desc.digest, expectedSize: 20, actualSize: 10 });
  });

  it('fails long content with ESIZE as soon as it overflows, passing nothing past the size', async () => {
    const desc = descFor(DATA);
    let pulled = 0;
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 100; i++) {
        pulled++;
        yield Buffer.from('0123456789');
      }
    }
    const got: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        got.push(chunk);
        cb();
      },
    });
    const err = await pipeline(Readable.from(source()), verifyStream(desc), sink).then(
      () => undefined,
      (e: unknown) => e,
    );
    const e = expectS2n(err, 'ESIZE');
    expect(e.message).toMatch(/got at least 30 bytes, expected 20$/);
    expect(pulled).toBeLessThan(10);
    expect(Buffer.concat(got).length).toBeLessThanOrEqual(20);
  });

  it('fails same-size different content with EDIGEST carrying expected and actual', async () => {
    const desc = descFor(DATA, MediaType.ociConfig);
    const other = Buffer.from('x'.repeat(20));
    const r = await run(desc, [other]);
    const e = expectS2n(r.err, 'EDIGEST');
    expect(e.message).toMatch(/^verify config sha256:[0-9a-f]{12}…: content has digest sha256:[0-9a-f]{12}…, expected sha256:/);
    expect(e.context).toMatchObject({
      digest: desc.digest,
      expected: desc.digest,
      actual: sha256Digest(other),
      expectedSize: 20,
      actualSize: 20,
    });
  });

  it('names the blob kind from the media type', async () => {
    const r = await run(descFor(DATA, MediaType.dockerManifest), []);
    expect((r.err as S2nError).message).toMatch(/^verify manifest /);
    const r2 = await run(descFor(DATA, 'application/octet-stream'), []);
    expect((r2.err as S2nError).message).toMatch(/^verify blob /);
  });

  it('throws at once for a descriptor it cannot check', () => {
    expect(() => verifyStream({ mediaType: MediaType.ociLayer, digest: 'sha256:abc', size: 1 })).toThrow(
      expect.objectContaining({ code: 'EDIGEST', message: expect.stringMatching(/^verify layer sha256:abc: parse digest/) }),
    );
    expect(() => verifyStream({ mediaType: MediaType.ociLayer, digest: 'md5:' + 'a'.repeat(32) as Digest, size: 1 })).toThrow(
      expect.objectContaining({ code: 'EDIGEST' }),
    );
    expect(() => verifyStream({ ...descFor(DATA), size: -1 })).toThrow(expect.objectContaining({ code: 'ESIZE' }));
    expect(() => verifyStream({ ...descFor(DATA), size: 1.5 })).toThrow(expect.objectContaining({ code: 'ESIZE' }));
  });
});

describe('createHasher', () => {
  it('keeps hashing across separate feeds and can be read midway', () => {
    const h = createHasher('sha256');
    h.update(DATA.subarray(0, 5));
    expect(h.digest()).toBe(sha256Digest(DATA.subarray(0, 5)));
    expect(h.bytes).toBe(5);
    // e.g. the rest arriving over a second, Range-resumed request
    h.update(DATA.subarray(5));
    expect(h.bytes).toBe(20);
    expect(h.digest()).toBe(sha256Digest(DATA));
    expect(h.digest()).toBe(sha256Digest(DATA));
    expect(h.algorithm).toBe('sha256');
  });

  it('computes sha512', () => {
    const h = createHasher('sha512');
    h.update(DATA);
    expect(h.digest()).toBe(`sha512:${createHash('sha512').update(DATA).digest('hex')}`);
  });
});

describe('readVerified', () => {
  it('returns the verified bytes', async () => {
    const json = Buffer.from(JSON.stringify({ schemaVersion: 2 }));
    const got = await readVerified(Readable.from([json.subarray(0, 3), json.subarray(3)]), descFor(json, MediaType.ociManifest), 1024);
    expect(got.equals(json)).toBe(true);
  });

  it('accepts string chunks', async () => {
    const got = await readVerified(Readable.from(['0123456789', 'abcdefghij'], { objectMode: true }), descFor(DATA), 100);
    expect(got.equals(DATA)).toBe(true);
  });

  it('refuses with ELIMIT before reading when the descriptor is too large', async () => {
    let started = false;
    async function* source(): AsyncGenerator<Buffer> {
      started = true;
      yield DATA;
    }
    const stream = Readable.from(source());
    const err = await readVerified(stream, descFor(DATA, MediaType.ociManifest), 10).catch((e: unknown) => e);
    const e = expectS2n(err, 'ELIMIT');
    expect(e.message).toMatch(/^read manifest sha256:[0-9a-f]{12}…: size 20 is over the 10-byte limit$/);
    expect(e.context).toMatchObject({ size: 20, limit: 10 });
    expect(started).toBe(false);
    expect(stream.destroyed).toBe(true);
  });

  it('fails with ESIZE when the stream sends more than declared', async () => {
    const err = await readVerified(Readable.from([DATA, DATA]), descFor(DATA), 1000).catch((e: unknown) => e);
    expect(expectS2n(err, 'ESIZE').message).toMatch(/got at least 40 bytes, expected 20$/);
  });

  it('fails with ESIZE when short, EDIGEST when different', async () => {
    const short = await readVerified(Readable.from([DATA.subarray(0, 5)]), descFor(DATA), 1000).catch((e: unknown) => e);
    expect(expectS2n(short, 'ESIZE').message).toMatch(/got 5 bytes, expected 20$/);
    const diff = await readVerified(Readable.from([Buffer.alloc(20)]), descFor(DATA), 1000).catch((e: unknown) => e);
    expectS2n(diff, 'EDIGEST');
  });

  it('destroys the stream when the descriptor is unusable', async () => {
    const stream = Readable.from([DATA]);
    const err = await readVerified(stream, { mediaType: MediaType.ociConfig, digest: 'sha256:nope', size: 20 }, 100).catch(
      (e: unknown) => e,
    );
    expectS2n(err, 'EDIGEST');
    expect(stream.destroyed).toBe(true);
  });
});
