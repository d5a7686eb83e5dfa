import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { S2nError } from '../../../src/errors.js';
import { MediaType } from '../../../src/oci/mediatypes.js';
import type { Digest } from '../../../src/oci/types.js';
import { emptyRegistriesConfig, parseMirror, type RegistriesConfig } from '../../../src/sources/registry/config.js';
import { FakeRegistry, readAll, registryError, sendBlob, sendJson, sha256, startServer, testClient, type TestServer } from './fake.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function registry(o: ConstructorParameters<typeof FakeRegistry>[0] = {}): Promise<FakeRegistry> {
  const r = await FakeRegistry.start(o);
  cleanups.push(() => r.close());
  return r;
}

async function server(h: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(h);
  cleanups.push(() => s.close());
  return s;
}

function client(host: string, o: Parameters<typeof testClient>[1] = {}): ReturnType<typeof testClient> {
  const c = testClient(host, o);
  cleanups.push(() => c.close());
  return c;
}

const manifestDoc = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [] };

async function caught(p: Promise<unknown>): Promise<S2nError> {
  try {
    await p;
  } catch (e) {
    return e as S2nError;
  }
  throw new Error('expected a rejection');
}

describe('RegistryClient: manifests', () => {
  it('gets a manifest by tag and by digest; descriptor from the body and Content-Type', async () => {
    const r = await registry();
    const m = r.addManifest('library/alpine', 'latest', manifestDoc);
    const c = client(r.host);
    const byTag = await c.getManifest('library/alpine', 'latest', { maxBytes: 1 << 20 });
    expect(byTag.descriptor).toEqual({ mediaType: MediaType.ociManifest, digest: m.digest, size: m.body.length });
    expect(byTag.body.equals(m.body)).toBe(true);
    expect(r.requests[0]?.headers.accept).toContain(MediaType.ociIndex);
    const byDigest = await c.getManifest('library/alpine', m.digest, { maxBytes: 1 << 20 });
    expect(byDigest.descriptor.digest).toBe(m.digest);
  });

  it('tells an unknown repository from an unknown tag', async () => {
    const r = await registry();
    r.addManifest('library/alpine', 'latest', manifestDoc);
    const c = client(r.host);
    const noRepo = await caught(c.getManifest('library/nope', 'latest', { maxBytes: 1 << 20 }));
    expect(noRepo).toMatchObject({ code: 'ENOTFOUND', context: { status: 404, errors: ['NAME_UNKNOWN'], repository: 'library/nope' } });
    expect(noRepo.message).toMatch(/repository .*library\/nope not found/);
    const noTag = await caught(c.getManifest('library/alpine', 'v9', { maxBytes: 1 << 20 }));
    expect(noTag).toMatchObject({ code: 'ENOTFOUND', context: { errors: ['MANIFEST_UNKNOWN'], reference: 'v9' } });
    expect(noTag.message).toMatch(/manifest unknown/);
  });

  it('refuses a body whose digest differs from the requested one', async () => {
    const other = Buffer.from(JSON.stringify({ ...manifestDoc, annotations: { a: 'b' } }));
    const want = sha256('something else');
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': other.length });
      res.end(other);
    });
    const e = await caught(client(s.host).getManifest('a/b', want, { maxBytes: 1 << 20 }));
    expect(e).toMatchObject({ code: 'EDIGEST', context: { expected: want, actual: sha256(other) } });
  });

  it('computes the digest of a tag from the body and warns when the header lies', async () => {
    const body = Buffer.from(JSON.stringify(manifestDoc));
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-type': `${MediaType.ociManifest}; charset=utf-8`, 'docker-content-digest': sha256('lie') });
      res.end(body);
    });
    const warnings: string[] = [];
    const m = await client(s.host, { onWarning: (w) => warnings.push(w) }).getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    expect(m.descriptor).toEqual({ mediaType: MediaType.ociManifest, digest: sha256(body), size: body.length });
    expect(warnings[0]).toMatch(/does not match/);
  });

  it('enforces maxBytes from Content-Length and while streaming', async () => {
    const big = Buffer.alloc(4096, 'x');
    const s = await server((req, res) => {
      if (req.url?.includes('chunked')) {
        res.writeHead(200, { 'content-type': MediaType.ociManifest }); // no Content-Length: streamed
        res.write(big);
        res.end(big);
      } else {
        res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': big.length });
        res.end(big);
      }
    });
    const c = client(s.host);
    await expect(c.getManifest('a/b', 'latest', { maxBytes: 1000 })).rejects.toMatchObject({ code: 'ELIMIT', context: { limit: 1000 } });
    await expect(c.getManifest('a/chunked', 'latest', { maxBytes: 5000 })).rejects.toMatchObject({ code: 'ELIMIT' });
  });
});

describe('RegistryClient: auth', () => {
  it('gets one anonymous token and reuses it for many requests', async () => {
    const r = await registry({ auth: 'bearer' });
    const blobs = Array.from({ length: 5 }, (_, i) => Buffer.from(`blob ${i}`));
    const digests = blobs.map((b) => r.addBlob('library/alpine', b));
    r.addManifest('library/alpine', 'latest', manifestDoc);
    const c = client(r.host);
    await c.getManifest('library/alpine', 'latest', { maxBytes: 1 << 20 });
    for (const [i, d] of digests.entries()) {
      const got = await readAll(await c.getBlob('library/alpine', { mediaType: MediaType.ociLayerGzip, digest: d as Digest, size: blobs[i]!.length }));
      expect(got.equals(blobs[i]!)).toBe(true);
    }
    expect(r.tokenRequests).toHaveLength(1);
    const tq = new URL(r.tokenRequests[0]!.url, 'http://x');
    expect(tq.searchParams.get('service')).toBe('fake-registry');
    expect(tq.searchParams.getAll('scope')).toEqual(['repository:library/alpine:pull']);
    expect(r.tokenRequests[0]!.headers.authorization).toBeUndefined();
    // Only the very first API request met a 401.
    expect(r.apiRequests.filter((q) => q.headers.authorization === undefined)).toHaveLength(1);
  });

  it('shares one token request among concurrent requests', async () => {
    const r = await registry({ auth: 'bearer' });
    const blobs = Array.from({ length: 4 }, (_, i) => Buffer.from(`c${i}`));
    const digests = blobs.map((b) => r.addBlob('x/y', b));
    const c = client(r.host);
    await Promise.all(digests.map(async (d, i) => readAll(await c.getBlob('x/y', { mediaType: 'application/octet-stream', digest: d as Digest, size: blobs[i]!.length }))));
    expect(r.tokenRequests).toHaveLength(1);
  });

  it('sends Basic credentials to the token server and fails clearly when they are wrong', async () => {
    const r = await registry({ auth: 'bearer', users: { alice: 's3cret' }, anonymous: false });
    r.addManifest('team/app', '1', manifestDoc);
    const ok = client(r.host, { credentials: async () => ({ username: 'alice', password: 's3cret' }) });
    await ok.getManifest('team/app', '1', { maxBytes: 1 << 20 });
    expect(r.tokenRequests[0]!.headers.authorization).toBe(`Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
    expect(new URL(r.tokenRequests[0]!.url, 'http://x').searchParams.get('account')).toBe('alice');

    const bad = client(r.host, { credentials: async () => ({ username: 'alice', password: 'wrong' }) });
    const e = await caught(bad.getManifest('team/app', '1', { maxBytes: 1 << 20 }));
    expect(e.code).toBe('EUNAUTHORIZED');
    expect(e.hint).toMatch(/check your credentials/);

    const anon = client(r.host);
    const e2 = await caught(anon.getManifest('team/app', '1', { maxBytes: 1 << 20 }));
    expect(e2.code).toBe('EUNAUTHORIZED');
    expect(e2.hint).toMatch(/s2n-oci login 127\.0\.0\.1:\d+/);
  });

  it('answers a Basic challenge with credentials, and says to log in without them', async () => {
    const r = await registry({ auth: 'basic', users: { bob: 'pw' } });
    r.addManifest('a/b', 'latest', manifestDoc);
    const c = client(r.host, { credentials: async () => ({ username: 'bob', password: 'pw' }) });
    await c.getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    await c.getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    // Second request sent Basic up front.
    expect(r.apiRequests.map((q) => q.headers.authorization === undefined)).toEqual([true, false, false]);

    const e = await caught(client(r.host).getManifest('a/b', 'latest', { maxBytes: 1 << 20 }));
    expect(e).toMatchObject({ code: 'EUNAUTHORIZED' });
    expect(e.hint).toMatch(/login/);
    const wrong = await caught(client(r.host, { credentials: async () => ({ username: 'bob', password: 'nope' }) }).ping());
    expect(wrong.code).toBe('EUNAUTHORIZED');
    expect(wrong.hint).toMatch(/check your credentials/);
  });

  it('renews a token the registry stopped accepting, once', async () => {
    const r = await registry({ auth: 'bearer' });
    r.addManifest('a/b', 'latest', manifestDoc);
    const c = client(r.host);
    await c.getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    r.revokeTokens();
    await c.getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    expect(r.tokenRequests).toHaveLength(2);
  });

  it('gives up with EUNAUTHORIZED when a fresh token is refused too', async () => {
    const s = await server((req, res) => {
      if (req.url?.startsWith('/token')) return sendJson(res, 200, { token: 'useless' });
      registryError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="s"` });
    });
    const e = await caught(client(s.host).getManifest('a/b', 'latest', { maxBytes: 1 << 20 }));
    expect(e).toMatchObject({ code: 'EUNAUTHORIZED', context: { status: 401 } });
    expect(s.requests.filter((q) => q.url.startsWith('/v2/'))).toHaveLength(2);
  });

  it('maps 403 to EDENIED', async () => {
    const s = await server((_req, res) => registryError(res, 403, 'DENIED', 'requested access to the resource is denied'));
    await expect(client(s.host).getManifest('a/b', 'latest', { maxBytes: 1 << 20 })).rejects.toMatchObject({ code: 'EDENIED', context: { status: 403 } });
  });

  it('renews tokens that expire (clock injected through the resolver)', async () => {
    const r = await registry({ auth: 'bearer', expiresIn: 60 });
    r.addManifest('a/b', 'latest', manifestDoc);
    const { AuthResolver } = await import('../../../src/sources/registry/auth.js');
    const { makeSender } = await import('../../../src/sources/registry/http.js');
    const { Transport } = await import('../../../src/sources/registry/transport.js');
    let now = Date.now();
    const transport = new Transport({ certDirs: [], env: {} });
    const auth = new AuthResolver({ send: makeSender(transport), credentials: async () => undefined, now: () => now });
    const c = client(r.host, { transport, auth });
    await c.getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    now += 30_000;
    await c.getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    expect(r.tokenRequests).toHaveLength(1);
    now += 60_000;
    await c.getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    expect(r.tokenRequests).toHaveLength(2);
    await transport.close();
  });
});

describe('RegistryClient: retries', () => {
  it('retries 500 then succeeds', async () => {
    let n = 0;
    const body = Buffer.from(JSON.stringify(manifestDoc));
    const s = await server((_req, res) => {
      if (++n <= 2) return registryError(res, 500, 'UNKNOWN', 'boom');
      res.writeHead(200, { 'content-type': MediaType.ociManifest });
      res.end(body);
    });
    const sleeps: number[] = [];
    const m = await client(s.host, { sleeps }).getManifest('a/b', 'latest', { maxBytes: 1 << 20 });
    expect(m.descriptor.digest).toBe(sha256(body));
    expect(n).toBe(3);
    expect(sleeps).toEqual([150, 300]); // 200·2^k, half jittered with random()=0.5
  });

  it('honours Retry-After on 429 and gives ETOOMANY when it never ends', async () => {
    let n = 0;
    const s = await server((req, res) => {
      n++;
      if (req.url?.includes('always')) return registryError(res, 429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '7' });
      if (n === 1) return registryError(res, 429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '2' });
      sendBlob(req, res, Buffer.from('ok'));
    });
    const sleeps: number[] = [];
    const c = client(s.host, { sleeps, retry: { attempts: 3 } });
    const got = await readAll(await c.getBlob('a/b', { mediaType: 'x', digest: sha256('ok'), size: 2 }));
    expect(got.toString()).toBe('ok');
    expect(sleeps).toEqual([2000]);
    await expect(c.getBlob('a/always', { mediaType: 'x', digest: sha256('ok'), size: 2 })).rejects.toMatchObject({ code: 'ETOOMANY', context: { status: 429 } });
    expect(sleeps).toEqual([2000, 7000, 7000]);
  });

  it('does not retry 404 or 501', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      n++;
      registryError(res, 501, 'UNSUPPORTED', 'nope');
    });
    await expect(client(s.host).ping()).rejects.toMatchObject({ code: 'EREGISTRY', context: { status: 501 } });
    expect(n).toBe(1);
  });

  it('reports connection refused as ENETWORK with a hint, after retrying', async () => {
    const s = await startServer((_q, r) => r.end());
    const host = s.host;
    await s.close();
    const sleeps: number[] = [];
    const e = await caught(client(host, { sleeps, retry: { attempts: 2 } }).ping());
    expect(e).toMatchObject({ code: 'ENETWORK', context: { errno: 'ECONNREFUSED', registry: host, url: `http://${host}/v2/` } });
    expect(e.message).toMatch(new RegExp(`^ping registry ${host}: `));
    expect(e.hint).toMatch(/nothing listens/);
    expect(sleeps).toHaveLength(1);
  });
});

describe('RegistryClient: blobs', () => {
  const blob = randomBytes(256 * 1024);
  const digest = sha256(blob);
  const desc = { mediaType: MediaType.ociLayerGzip, digest, size: blob.length };

  it('resumes with Range after a reset mid-blob and delivers identical bytes', async () => {
    let cut = false;
    const s = await server((req, res) => {
      if (!cut) {
        cut = true;
        res.writeHead(200, { 'content-length': blob.length });
        res.write(blob.subarray(0, 100_000), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      sendBlob(req, res, blob);
    });
    const resumes: number[] = [];
    const got = await readAll(await client(s.host).getBlob('a/b', desc, { onResume: (off) => resumes.push(off) }));
    expect(got.equals(blob)).toBe(true);
    expect(resumes).toHaveLength(1);
    expect(s.requests[1]?.headers.range).toBe(`bytes=${resumes[0]}-`);
    expect(resumes[0]).toBeGreaterThan(0);
  });

  it('skips what it already has when the server ignores Range and answers 200', async () => {
    let cut = false;
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': blob.length });
      if (!cut) {
        cut = true;
        res.write(blob.subarray(0, 50_000), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      res.end(blob);
    });
    const got = await readAll(await client(s.host).getBlob('a/b', desc));
    expect(got.equals(blob)).toBe(true);
    expect(s.requests).toHaveLength(2);
  });

  it('resumes when the body ends early without an error (no Content-Length)', async () => {
    let n = 0;
    const s = await server((req, res) => {
      if (n++ === 0) {
        res.writeHead(200, { connection: 'close' });
        res.end(blob.subarray(0, 1000));
        return;
      }
      sendBlob(req, res, blob);
    });
    const got = await readAll(await client(s.host).getBlob('a/b', desc));
    expect(got.equals(blob)).toBe(true);
    expect(s.requests[1]?.headers.range).toBe('bytes=1000-');
  });

  it('gives up after the retry budget when the connection keeps dropping', async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-length': blob.length });
      res.flushHeaders();
      setTimeout(() => res.socket?.destroy(), 10);
    });
    const stream = await client(s.host, { retry: { attempts: 3 } }).getBlob('a/b', desc);
    await expect(readAll(stream)).rejects.toMatchObject({ code: 'ENETWORK', context: { delivered: 0 } });
  });

  it('refuses a 206 whose Content-Range does not start where asked', async () => {
    let n = 0;
    const s = await server((_req, res) => {
      if (n++ === 0) {
        res.writeHead(200, { connection: 'close' });
        res.end(blob.subarray(0, 10));
        return;
      }
      res.writeHead(206, { 'content-range': `bytes 0-${blob.length - 1}/${blob.length}` });
      res.end(blob);
    });
    const stream = await client(s.host).getBlob('a/b', desc);
    await expect(readAll(stream)).rejects.toMatchObject({ code: 'EREGISTRY', context: { status: 206 } });
  });

  it('follows a redirect to another origin without the Authorization header', async () => {
    const storage = await server((req, res) => sendBlob(req, res, blob));
    const r = await registry({
      auth: 'bearer',
      hook: (req, res) => {
        if (!req.url?.includes('/blobs/')) return false;
        res.writeHead(307, { location: `${storage.url}/bucket/blob?X-Amz-Signature=secret` });
        res.end();
        return true;
      },
    });
    const got = await readAll(await client(r.host).getBlob('a/b', desc));
    expect(got.equals(blob)).toBe(true);
    expect(storage.requests).toHaveLength(1);
    expect(storage.requests[0]!.headers.authorization).toBeUndefined();
    expect(storage.requests[0]!.url).toBe('/bucket/blob?X-Amz-Signature=secret');
  });

  it('keeps the Authorization header on a same-origin redirect', async () => {
    const r = await registry({
      auth: 'bearer',
      hook: (req, res) => {
        if (req.url?.startsWith('/storage/')) {
          sendBlob(req, res, blob);
          return true;
        }
        if (!req.url?.includes('/blobs/')) return false;
        res.writeHead(302, { location: '/storage/x' });
        res.end();
        return true;
      },
    });
    const got = await readAll(await client(r.host).getBlob('a/b', desc));
    expect(got.equals(blob)).toBe(true);
    const hop = r.requests.find((q) => q.url === '/storage/x');
    expect(hop?.headers.authorization).toMatch(/^Bearer /);
  });

  it('reports an unknown blob as ENOTFOUND from getBlob itself', async () => {
    const r = await registry();
    r.addBlob('a/b', Buffer.from('other'));
    await expect(client(r.host).getBlob('a/b', desc)).rejects.toMatchObject({ code: 'ENOTFOUND', context: { errors: ['BLOB_UNKNOWN'], digest } });
  });
});

describe('RegistryClient: mirrors and schemes', () => {
  function withMirrors(origin: string, mirrors: string[]): RegistriesConfig {
    const cfg = emptyRegistriesConfig();
    cfg.registries[origin] = { mirrors: mirrors.map((m) => parseMirror(m)), insecure: false, blocked: false };
    return cfg;
  }

  it('pulls from a mirror first, falls back to the registry when the mirror fails', async () => {
    const origin = await registry();
    const mirror = await registry();
    const prefixed = await registry();
    const m = origin.addManifest('library/alpine', 'latest', manifestDoc);
    mirror.addManifest('library/alpine', 'latest', manifestDoc);
    prefixed.addManifest('cache/library/alpine', 'latest', manifestDoc);
    const dead = await startServer((_q, r) => r.end());
    await dead.close();

    const warnings: string[] = [];
    const c = client(origin.host, { config: withMirrors(origin.host, [dead.host, mirror.host]), onWarning: (w) => warnings.push(w), retry: { attempts: 1 } });
    const got = await c.getManifest('library/alpine', 'latest', { maxBytes: 1 << 20 });
    expect(got.descriptor.digest).toBe(m.digest);
    expect(mirror.apiRequests).toHaveLength(1);
    expect(origin.apiRequests).toHaveLength(0);
    expect(warnings[0]).toMatch(new RegExp(`mirror ${dead.host}`));

    // A mirror without the image: fall back to the registry.
    const c2 = client(origin.host, { config: withMirrors(origin.host, [mirror.host]) });
    origin.addManifest('library/busybox', 'latest', manifestDoc);
    await c2.getManifest('library/busybox', 'latest', { maxBytes: 1 << 20 });
    expect(origin.apiRequests).toHaveLength(1);

    // A mirror with a path prefix.
    const c3 = client(origin.host, { config: withMirrors(origin.host, [`${prefixed.host}/cache`]) });
    await c3.getManifest('library/alpine', 'latest', { maxBytes: 1 << 20 });
    expect(prefixed.apiRequests[0]?.url).toBe('/v2/cache/library/alpine/manifests/latest');
  });

  it('reports the registry error with the mirror failures in context', async () => {
    const origin = await registry();
    origin.addManifest('x/y', 'latest', manifestDoc);
    const mirror = await registry();
    mirror.addManifest('x/y', 'latest', manifestDoc);
    const c = client(origin.host, { config: withMirrors(origin.host, [mirror.host]) });
    const e = await caught(c.getManifest('x/y', 'nope', { maxBytes: 1 << 20 }));
    expect(e.code).toBe('ENOTFOUND');
    expect(e.context.mirrors).toEqual([{ mirror: mirror.host, error: expect.stringMatching(/manifest unknown/) }]);
  });

  it('refuses blocked registries', async () => {
    const cfg = emptyRegistriesConfig();
    cfg.registries['blocked.example'] = { mirrors: [], insecure: false, blocked: true };
    await expect(client('blocked.example', { config: cfg }).ping()).rejects.toMatchObject({ code: 'EDENIED' });
  });

  it('falls back from HTTPS to HTTP for an insecure registry', async () => {
    const r = await registry();
    const { Transport } = await import('../../../src/sources/registry/transport.js');
    const cfg = emptyRegistriesConfig();
    cfg.registries[r.host] = { mirrors: [], insecure: true, blocked: false };
    // Pretend the loopback registry is remote so the insecure path is taken.
    const transport = new Transport({ certDirs: [], env: {}, plainHttp: () => false });
    cleanups.push(() => transport.close());
    const res = await client(r.host, { config: cfg, transport }).ping();
    expect(res.origin).toBe(`http://${r.host}`);
    const strict = client(r.host, { transport, retry: { attempts: 1 } });
    await expect(strict.ping()).rejects.toMatchObject({ code: 'ETLS' });
  });
});
