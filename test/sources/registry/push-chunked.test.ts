/**
 * Chunked blob uploads against the real docker-registry behind the fault
 * proxy: POST, PATCHes with Content-Range following each Location, an empty
 * PUT ?digest=; a PATCH that fails transiently is resent from where the
 * registry's upload status says it stands.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { S2nError } from '../../../src/errors.js';
import type { Descriptor } from '../../../src/oci/types.js';
import { registryBehindProxy } from '../../helpers/fixtures.js';
import { startServer, testClient, type TestServer } from './fake.js';

const MiB = 1024 * 1024;

function blob(size: number): { desc: Descriptor; data: Buffer } {
  const data = randomBytes(size);
  return { data, desc: { mediaType: 'application/octet-stream', digest: `sha256:${createHash('sha256').update(data).digest('hex')}`, size } };
}

/** The source in uneven pieces, so chunk boundaries fall inside them. */
function pieces(data: Buffer, n = 300_001): Readable {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += n) out.push(data.subarray(i, i + n));
  return Readable.from(out);
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('chunked push', () => {
  const env = registryBehindProxy();
  beforeEach(() => {
    env.proxy.clearRules();
    env.proxy.log.length = 0;
  });

  it('sends a 3 MiB blob as three PATCHes with Content-Range, then an empty PUT ?digest=', async () => {
    const { desc, data } = blob(3 * MiB);
    const c = testClient(env.proxy.host, { chunkedUploadThreshold: MiB, uploadChunkSize: MiB });
    try {
      await c.pushBlob('chunk/a', desc, pieces(data));
      const patches = env.proxy.log.filter((e) => e.method === 'PATCH');
      expect(patches.map((e) => [e.contentRange, e.status])).toEqual([
        [`0-${MiB - 1}`, 202],
        [`${MiB}-${2 * MiB - 1}`, 202],
        [`${2 * MiB}-${3 * MiB - 1}`, 202],
      ]);
      const puts = env.proxy.log.filter((e) => e.method === 'PUT');
      expect(puts).toHaveLength(1);
      expect(puts[0]!.url).toContain(`digest=${encodeURIComponent(desc.digest)}`);
      expect(puts[0]!.status).toBe(201);
      expect(await c.hasBlob('chunk/a', desc)).toBe(true);
      expect((await collect(await c.getBlob('chunk/a', desc))).equals(data)).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('sends a last short chunk', async () => {
    const { desc, data } = blob(2 * MiB + 12345);
    const c = testClient(env.proxy.host, { chunkedUploadThreshold: MiB, uploadChunkSize: MiB });
    try {
      await c.pushBlob('chunk/b', desc, pieces(data, 65536));
      expect(env.proxy.log.filter((e) => e.method === 'PATCH').map((e) => e.contentRange)).toEqual([`0-${MiB - 1}`, `${MiB}-${2 * MiB - 1}`, `${2 * MiB}-${2 * MiB + 12344}`]);
      expect((await collect(await c.getBlob('chunk/b', desc))).equals(data)).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('retries a PATCH that got a 500, after asking the registry where the upload stands', async () => {
    const { desc, data } = blob(3 * MiB);
    const sleeps: number[] = [];
    const c = testClient(env.proxy.host, { chunkedUploadThreshold: MiB, uploadChunkSize: MiB, sleeps });
    env.proxy.addRule({ method: 'PATCH', path: '/blobs/uploads/', kind: 'status', status: 500, skip: 1 });
    try {
      await c.pushBlob('chunk/c', desc, pieces(data));
      const seq = env.proxy.log.filter((e) => e.method === 'PATCH' || (e.method === 'GET' && e.path.includes('/uploads/'))).map((e) => `${e.method} ${e.contentRange ?? ''} ${e.status}`);
      expect(seq).toEqual([
        `PATCH 0-${MiB - 1} 202`,
        `PATCH ${MiB}-${2 * MiB - 1} 500`,
        `GET  204`,
        `PATCH ${MiB}-${2 * MiB - 1} 202`,
        `PATCH ${2 * MiB}-${3 * MiB - 1} 202`,
      ]);
      expect(sleeps).toHaveLength(1);
      expect((await collect(await c.getBlob('chunk/c', desc))).equals(data)).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('fails clearly when the answer to a PATCH the registry took was lost (distribution drops the session)', async () => {
    const { desc, data } = blob(3 * MiB);
    const c = testClient(env.proxy.host, { chunkedUploadThreshold: MiB, uploadChunkSize: MiB });
    env.proxy.addRule({ method: 'PATCH', path: '/blobs/uploads/', kind: 'drop', skip: 1 });
    const src = pieces(data);
    try {
      const e = await c.pushBlob('chunk/f', desc, src).then(
        () => undefined,
        (x: unknown) => x as S2nError,
      );
      expect(e?.code).toBe('EREGISTRY');
      expect(e?.message).toMatch(/chunk at byte 1048576 failed .*no longer had the upload/);
      expect(e?.hint).toMatch(/push again/);
      expect(src.destroyed).toBe(true);
      expect(env.proxy.log.filter((x) => x.method === 'PATCH').map((x) => x.status)).toEqual([202, null]);
    } finally {
      await c.close();
    }
  });

  it('gives up when the PATCH keeps failing, and destroys the source', async () => {
    const { desc, data } = blob(2 * MiB);
    const c = testClient(env.proxy.host, { chunkedUploadThreshold: MiB, uploadChunkSize: MiB, retry: { attempts: 2 } });
    env.proxy.addRule({ method: 'PATCH', path: '/blobs/uploads/', kind: 'status', status: 503, times: Infinity });
    const src = pieces(data);
    try {
      await expect(c.pushBlob('chunk/d', desc, src)).rejects.toMatchObject({ code: 'EREGISTRY' });
      expect(env.proxy.log.filter((e) => e.method === 'PATCH')).toHaveLength(2);
      expect(src.destroyed).toBe(true);
      expect(await c.hasBlob('chunk/d', desc)).toBe(false);
    } finally {
      await c.close();
    }
  });

  it('uploads blobs at or under the threshold in one PUT', async () => {
    const { desc, data } = blob(MiB);
    const c = testClient(env.proxy.host, { chunkedUploadThreshold: MiB, uploadChunkSize: 256 * 1024 });
    try {
      await c.pushBlob('chunk/e', desc, pieces(data));
      expect(env.proxy.log.filter((e) => e.method === 'PATCH')).toHaveLength(0);
      expect((await collect(await c.getBlob('chunk/e', desc))).equals(data)).toBe(true);
    } finally {
      await c.close();
    }
  });
});

/**
 * A registry that keeps the upload session whatever the Location (as the spec
 * allows), takes only part of a chunk or all of it and loses the answer:
 * the client asks where the upload stands and sends only what is missing.
 */
describe('chunked push resume (fake upload server)', () => {
  let srv: TestServer;
  let stored: Buffer;
  /** Per PATCH number (1-based): take this many bytes of it, then drop the connection. */
  let cut: Map<number, number>;
  let patches: number;
  let committed: string | undefined;
  beforeAll(async () => {
    srv = await startServer(async (req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const parts: Buffer[] = [];
      for await (const c of req) parts.push(c as Buffer);
      const body = Buffer.concat(parts);
      if (req.method === 'POST') {
        res.writeHead(202, { location: '/v2/r/blobs/uploads/u1?n=0', range: '0-0', 'content-length': '0' }).end();
      } else if (req.method === 'PATCH') {
        patches++;
        const [from] = String(req.headers['content-range']).split('-').map(Number);
        if (from !== stored.length) return res.writeHead(416, { 'content-length': '0' }).end();
        const take = cut.get(patches);
        stored = Buffer.concat([stored, take === undefined ? body : body.subarray(0, take)]);
        if (take !== undefined) return res.socket?.resetAndDestroy();
        // Relative Location, a new one each time.
        res.writeHead(202, { location: `u1?n=${patches}`, range: `0-${stored.length - 1}`, 'content-length': '0' }).end();
      } else if (req.method === 'GET') {
        res.writeHead(204, { location: `/v2/r/blobs/uploads/u1?n=g${patches}`, range: `0-${Math.max(0, stored.length - 1)}` }).end();
      } else if (req.method === 'PUT') {
        committed = `sha256:${createHash('sha256').update(stored).digest('hex')}`;
        res.writeHead(committed === u.searchParams.get('digest') && body.length === 0 ? 201 : 400, { 'content-length': '0' }).end();
      } else {
        res.writeHead(405).end();
      }
    });
  });
  afterAll(async () => srv?.close());
  beforeEach(() => {
    stored = Buffer.alloc(0);
    cut = new Map();
    patches = 0;
    committed = undefined;
    srv.requests.length = 0;
  });

  for (const [name, take, resent] of [
    ['resends the rest of a chunk the registry took part of', 300_000, `${MiB + 300_000}-${2 * MiB - 1}`],
    ['does not resend a chunk the registry took whole', MiB, `${2 * MiB}-${3 * MiB - 1}`],
  ] as const) {
    it(name, async () => {
      const { desc, data } = blob(3 * MiB);
      cut.set(2, take);
      const c = testClient(srv.host, { chunkedUploadThreshold: MiB, uploadChunkSize: MiB });
      try {
        await c.pushBlob('r', desc, pieces(data));
      } finally {
        await c.close();
      }
      expect(committed).toBe(desc.digest);
      const seq = srv.requests.map((r) => `${r.method} ${r.url} ${r.headers['content-range'] ?? ''}`.trim());
      expect(seq[0]).toBe('POST /v2/r/blobs/uploads/');
      expect(seq[1]).toBe(`PATCH /v2/r/blobs/uploads/u1?n=0 0-${MiB - 1}`);
      expect(seq[2]).toBe(`PATCH /v2/r/blobs/uploads/u1?n=1 ${MiB}-${2 * MiB - 1}`);
      expect(seq[3]).toBe('GET /v2/r/blobs/uploads/u1?n=1');
      expect(seq[4]).toBe(`PATCH /v2/r/blobs/uploads/u1?n=g2 ${resent}`);
      expect(seq.at(-1)).toMatch(/^PUT \/v2\/r\/blobs\/uploads\/u1\?n=\d+&digest=sha256%3A/);
    });
  }
});
