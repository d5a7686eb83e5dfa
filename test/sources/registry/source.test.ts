import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { MediaType } from '../../../src/oci/mediatypes.js';
import { parseReference } from '../../../src/oci/reference.js';
import { AuthResolver } from '../../../src/sources/registry/auth.js';
import type { HttpRequest, HttpResponse } from '../../../src/sources/registry/http.js';
import { retryPolicy } from '../../../src/sources/registry/retry.js';
import { openRegistrySource } from '../../../src/sources/registry/source.js';
import { FakeRegistry, readAll, testClient } from './fake.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('RegistrySource', () => {
  it('resolves by tag, serves the cached root manifest, fetches the rest', async () => {
    const r = await FakeRegistry.start({ auth: 'bearer' });
    cleanups.push(() => r.close());
    const layer = Buffer.from('layer bytes');
    const layerDigest = r.addBlob('app/web', layer);
    const child = r.addManifest('app/web', undefined, { schemaVersion: 2, mediaType: MediaType.ociManifest, config: {}, layers: [] });
    const index = r.addManifest('app/web', '1.0', { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: child.digest, size: child.body.length }] }, MediaType.ociIndex);

    const ref = parseReference(`${r.host}/app/web:1.0`);
    const src = openRegistrySource(ref, { client: testClient(r.host) });
    cleanups.push(() => src.client.close());
    expect(src.description).toBe(`docker://${r.host}/app/web:1.0`);
    const root = await src.resolve();
    expect(root).toEqual({ mediaType: MediaType.ociIndex, digest: index.digest, size: index.body.length });

    const before = r.apiRequests.length;
    expect((await readAll(await src.fetch(root))).equals(index.body)).toBe(true);
    expect(r.apiRequests.length).toBe(before); // no second download of the root

    const m = await readAll(await src.fetch({ mediaType: MediaType.ociManifest, digest: child.digest as `sha256:${string}`, size: child.body.length }));
    expect(m.equals(child.body)).toBe(true);
    expect(r.apiRequests.at(-1)?.url).toBe(`/v2/app/web/manifests/${child.digest}`);

    const l = await readAll(await src.fetch({ mediaType: MediaType.ociLayerGzip, digest: layerDigest as `sha256:${string}`, size: layer.length }));
    expect(l.equals(layer)).toBe(true);
    expect(r.apiRequests.at(-1)?.url).toBe(`/v2/app/web/blobs/${layerDigest}`);
    await src.close();
  });

  it('resolves by digest when the reference has one', async () => {
    const r = await FakeRegistry.start();
    cleanups.push(() => r.close());
    const m = r.addManifest('app/web', 'latest', { schemaVersion: 2, mediaType: MediaType.dockerManifest, config: {}, layers: [] }, MediaType.dockerManifest);
    const src = openRegistrySource(parseReference(`${r.host}/app/web:ignored@${m.digest}`), { client: testClient(r.host) });
    cleanups.push(() => src.client.close());
    expect((await src.resolve()).digest).toBe(m.digest);
    expect(r.apiRequests[0]?.url).toBe(`/v2/app/web/manifests/${m.digest}`);
  });
});

describe('AuthResolver details', () => {
  function fakeSend(log: HttpRequest[], answer: (req: HttpRequest) => { status: number; body: unknown }): (req: HttpRequest) => Promise<HttpResponse> {
    return async (req) => {
      log.push(req);
      const a = answer(req);
      // Only what the resolver reads of a response: status and a readable body.
      const body = Object.assign(Readable.from([Buffer.from(JSON.stringify(a.body))]), { dump: async () => undefined }) as unknown as HttpResponse['body'];
      return { status: a.status, headers: {}, body, url: req.url };
    };
  }

  it('uses an identity token as an OAuth2 refresh token (POST)', async () => {
    const log: HttpRequest[] = [];
    const auth = new AuthResolver({
      send: fakeSend(log, () => ({ status: 200, body: { access_token: 'acc', expires_in: 120 } })),
      credentials: async () => ({ username: '', password: '', identityToken: 'refresh' }),
      retry: retryPolicy({ attempts: 1 }),
    });
    const h = await auth.challenged('reg.example', ['Bearer realm="https://auth.example/token",service="reg"'], ['repository:a/b:pull'], undefined);
    expect(h).toBe('Bearer acc');
    expect(log[0]?.method).toBe('POST');
    const form = new URLSearchParams(String(log[0]?.body));
    expect(Object.fromEntries(form)).toEqual({ grant_type: 'refresh_token', refresh_token: 'refresh', client_id: 's2n-oci', service: 'reg', scope: 'repository:a/b:pull' });
  });

  it('refuses a plain-HTTP token realm off loopback unless the registry is insecure', async () => {
    const log: HttpRequest[] = [];
    const auth = new AuthResolver({ send: fakeSend(log, () => ({ status: 200, body: { token: 't' } })), credentials: async () => undefined, retry: retryPolicy({ attempts: 1 }) });
    const www = ['Bearer realm="http://auth.example/token"'];
    await expect(auth.challenged('reg.example', www, [], undefined)).rejects.toMatchObject({ code: 'EREGISTRY' });
    expect(log).toHaveLength(0);
    await expect(auth.challenged('reg.example', www, [], undefined, { insecure: true })).resolves.toBe('Bearer t');
  });

  it('rejects unsupported challenge schemes', async () => {
    const auth = new AuthResolver({ send: async () => Promise.reject(new Error('unused')), credentials: async () => undefined });
    await expect(auth.challenged('reg.example', ['Negotiate abc'], [], undefined)).rejects.toMatchObject({ code: 'EUNAUTHORIZED' });
  });
});
