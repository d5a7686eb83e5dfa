import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { Digest, ImageIndex, ImageManifest } from '../../src/oci/types.js';
import { CAN_RUN_AS_USER, CLI_PATH, cliSandbox, runCli, spawnCli, tempDir, testUser } from './cli.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import {
  bigRandomLayer,
  buildImage,
  buildIndex,
  buildLargeImageOnDisk,
  buildLayer,
  dir,
  file,
  hardlink,
  opaqueWhiteout,
  sha256,
  smallImage,
  symlink,
  whiteout,
} from './images.js';
import { parseChallenge, pushImage, TestRegistryClient } from './push.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { libtrustKeyId } from './token-server.js';

async function listTar(buf: Buffer): Promise<Array<{ name: string; type: string; mode: number; linkname: string | null; body: string; pax: unknown }>> {
  const ex = tar.extract();
  const out: Array<{ name: string; type: string; mode: number; linkname: string | null; body: string; pax: unknown }> = [];
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
      const h = entry.header;
      out.push({ name: h.name, type: h.type, mode: h.mode, linkname: h.linkname ?? null, body: Buffer.concat(chunks).toString(), pax: h.pax });
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

async function rawGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

describe('images', () => {
  it('builds deterministic layers with every entry kind', async () => {
    const entries = [
      dir('etc/'),
      file('etc/a', 'alpha', { mode: 0o600, uid: 1000, gid: 1000, pax: { 'SCHILY.xattr.user.k': 'v' } }),
      symlink('etc/b', 'a'),
      hardlink('etc/c', 'etc/a'),
      whiteout('etc/gone'),
      opaqueWhiteout('var/'),
      { type: 'character-device' as const, path: 'dev/null', devmajor: 1, devminor: 3 },
      { type: 'fifo' as const, path: 'run/fifo' },
    ];
    const a = await buildLayer(entries);
    const b = await buildLayer(entries);
    expect(a.digest).toBe(b.digest);
    expect(a.digest).toBe(sha256(a.blob));
    const raw = gunzipSync(a.blob);
    expect(a.diffId).toBe(sha256(raw));
    expect(a.mediaType).toBe(MediaType.ociLayerGzip);
    const list = await listTar(raw);
    expect(list.map((e) => [e.name, e.type])).toEqual([
      ['etc/', 'directory'],
      ['etc/a', 'file'],
      ['etc/b', 'symlink'],
      ['etc/c', 'link'],
      ['etc/.wh.gone', 'file'],
      ['var/.wh..wh..opq', 'file'],
      ['dev/null', 'character-device'],
      ['run/fifo', 'fifo'],
    ]);
    expect(list[1]).toMatchObject({ mode: 0o600, body: 'alpha', pax: { 'SCHILY.xattr.user.k': 'v' } });
    expect(list[2]?.linkname).toBe('a');
    const plain = await buildLayer(entries, { compression: 'none', format: 'docker' });
    expect(plain.digest).toBe(a.diffId);
    expect(plain.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar');
  });

  it('builds images and indexes whose descriptors match their bytes', async () => {
    const im = await buildImage({ layers: [[file('x', '1')]], format: 'docker', config: { Cmd: ['/x'] } });
    expect(im.mediaType).toBe(MediaType.dockerManifest);
    expect(im.manifest.config.mediaType).toBe(MediaType.dockerConfig);
    expect(im.manifest.layers[0]?.mediaType).toBe(MediaType.dockerLayerGzip);
    expect(sha256(im.configBytes)).toBe(im.configDigest);
    expect(im.config.rootfs.diff_ids).toEqual(im.layers.map((l) => l.diffId));
    expect(im.config.config?.Cmd).toEqual(['/x']);
    const arm = await smallImage({ platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const amd = await smallImage();
    const idx = buildIndex([amd, arm], 'oci');
    expect(idx.index.manifests.map((d) => d.platform?.architecture)).toEqual(['amd64', 'arm64']);
    expect(idx.indexDigest).toBe(sha256(idx.indexBytes));
    expect(arm.config.variant).toBe('v8');
  });

  it('streams big random layers to disk, deterministically', async () => {
    const d = tempDir();
    const a = await bigRandomLayer(3 << 20, 'seed', { dir: d, fileSize: 1 << 20, reuse: false });
    const b = await bigRandomLayer(3 << 20, 'seed', { dir: tempDir(), fileSize: 1 << 20 });
    expect(a.digest).toBe(b.digest);
    const bytes = await readFile(a.path);
    expect(bytes.length).toBe(a.size);
    expect(sha256(bytes)).toBe(a.digest);
    const raw = gunzipSync(bytes);
    expect(sha256(raw)).toBe(a.diffId);
    // Incompressible: gzip cannot shrink it.
    expect(a.size).toBeGreaterThan(3 << 20);
    const names = (await listTar(raw)).map((e) => e.name);
    expect(names).toEqual(['random/', 'random/0000.bin', 'random/0001.bin', 'random/0002.bin']);
    const c = await bigRandomLayer(3 << 20, 'other', { dir: d, fileSize: 1 << 20 });
    expect(c.digest).not.toBe(a.digest);
    // Same args in the same dir: reused from the cache.
    const again = await bigRandomLayer(3 << 20, 'seed', { dir: d, fileSize: 1 << 20 });
    expect(again).toEqual(a);
  });
});

describe('registry without auth', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
    expect(existsSync(reg.dir)).toBe(false);
  });

  it('listens on loopback only, with its own config', async () => {
    expect(reg.host).toMatch(/^127\.0\.0\.1:\d+$/);
    const cfg = JSON.parse(await readFile(join(reg.dir, 'config.yml'), 'utf8')) as { http: { addr: string; debug?: unknown } };
    expect(cfg.http.addr).toBe(reg.host);
    expect(cfg.http.debug).toBeUndefined();
    const res = await rawGet(`${reg.url}/v2/`);
    expect(res.status).toBe(200);
  });

  it('pushes an OCI image, a Docker image and a multi-arch index and reads them back', async () => {
    const client = new TestRegistryClient(reg);
    const oci = await smallImage({ marker: 'oci' });
    const docker = await smallImage({ format: 'docker', marker: 'docker' });
    const r1 = await pushImage(reg, 'test/oci', oci, { tags: ['v1'] });
    expect(r1.reference).toBe(`${reg.host}/test/oci@${oci.manifestDigest}`);
    expect(r1.uploaded).toHaveLength(3);
    await pushImage(reg, 'test/docker', docker);

    const m1 = await client.getManifest('test/oci', 'v1');
    expect(m1.status).toBe(200);
    expect(m1.digest).toBe(oci.manifestDigest);
    expect(m1.mediaType).toBe(MediaType.ociManifest);
    expect(sha256(m1.body)).toBe(oci.manifestDigest);
    const m2 = await client.getManifest('test/docker', 'latest');
    expect(m2.digest).toBe(docker.manifestDigest);
    expect(m2.mediaType).toBe(MediaType.dockerManifest);
    const blob = await client.getBlob('test/docker', docker.layers[0]!.digest);
    expect(blob.body.equals(docker.layers[0]!.blob)).toBe(true);

    for (const format of ['oci', 'docker'] as const) {
      const arm = await smallImage({ format, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
      const amd = await smallImage({ format });
      const idx = buildIndex([amd, arm], format);
      const repo = `test/multi-${format}`;
      const r = await pushImage(reg, repo, idx, { tags: ['multi'] });
      expect(r.digest).toBe(idx.indexDigest);
      const got = await client.getManifest(repo, 'multi');
      expect(got.digest).toBe(idx.indexDigest);
      expect(got.mediaType).toBe(idx.mediaType);
      const parsed = JSON.parse(got.body.toString()) as ImageIndex;
      // Children were pushed by digest and can be fetched that way.
      const child = await client.getManifest(repo, parsed.manifests[1]!.digest);
      expect(child.status).toBe(200);
      expect(child.digest).toBe(arm.manifestDigest);
      // Pushing again skips existing blobs.
      const again = await pushImage(reg, repo, idx, { tags: ['multi'] });
      expect(again.uploaded).toEqual([]);
    }
  });

  it('pushes a large image streamed from disk (also a valid OCI layout)', async () => {
    const d = tempDir();
    const big = await buildLargeImageOnDisk(d, { layers: 2, layerSize: 2 << 20 });
    expect(existsSync(join(d, 'oci-layout'))).toBe(true);
    const layoutIndex = JSON.parse(await readFile(join(d, 'index.json'), 'utf8')) as ImageIndex;
    expect(layoutIndex.manifests[0]?.digest).toBe(big.manifestDigest);
    await pushImage(reg, 'test/big', big);
    const client = new TestRegistryClient(reg);
    const m = await client.getManifest('test/big', 'latest');
    expect(m.digest).toBe(big.manifestDigest);
    const blob = await client.getBlob('test/big', big.layers[1]!.digest);
    expect(sha256(blob.body)).toBe(big.layers[1]!.digest);
  });

  it('fails clearly when the registry cannot start', async () => {
    await expect(
      startRegistry({
        startTimeoutMs: 5000,
        configure: (c) => {
          c.storage = { nosuchdriver: {} };
        },
      }),
    ).rejects.toThrow(/docker-registry exited during startup[\s\S]*nosuchdriver/);
  });
});

describe('registry with basic auth', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'basic', users: { tester: 'secret', other: 'pw2' } });
  });
  afterAll(() => reg?.stop());

  it('challenges, rejects bad passwords and accepts good ones', async () => {
    const anon = await rawGet(`${reg.url}/v2/`);
    expect(anon.status).toBe(401);
    expect(parseChallenge(String(anon.headers['www-authenticate'])).scheme).toBe('basic');
    const bad = await rawGet(`${reg.url}/v2/`, { authorization: `Basic ${Buffer.from('tester:nope').toString('base64')}` });
    expect(bad.status).toBe(401);
    const good = await rawGet(`${reg.url}/v2/`, { authorization: `Basic ${Buffer.from('other:pw2').toString('base64')}` });
    expect(good.status).toBe(200);

    const im = await smallImage();
    await expect(pushImage(reg, 'app', im, { auth: { username: 'tester', password: 'wrong' } })).rejects.toThrow(/401/);
    await pushImage(reg, 'app', im, { auth: reg.credentials! });
    const m = await new TestRegistryClient(reg, { auth: reg.credentials! }).getManifest('app', 'latest');
    expect(m.digest).toBe(im.manifestDigest);
  });
});

describe('registry with token auth', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token', tokenExpiresIn: 120 });
  });
  afterAll(() => reg?.stop());

  it('runs the challenge → token → retry flow', async () => {
    const ts = reg.tokenServer!;
    const im = await smallImage();
    ts.requests.length = 0;
    const client = new TestRegistryClient(reg, { auth: reg.credentials! });
    await pushImage(reg, 'team/app', im, { client });
    // One token for `pull,push`, cached across every blob and manifest request.
    expect(ts.requests).toHaveLength(1);
    expect(ts.requests[0]).toMatchObject({ scopes: ['repository:team/app:pull,push'], credentials: true, user: 'tester', status: 200 });

    // By hand: 401 with a Bearer challenge naming realm, service and scope.
    const path = `/v2/team/app/manifests/latest`;
    const first = await rawGet(reg.url + path, { accept: MediaType.ociManifest });
    expect(first.status).toBe(401);
    const ch = parseChallenge(String(first.headers['www-authenticate']));
    expect(ch).toEqual({
      scheme: 'bearer',
      params: { realm: ts.realm, service: ts.service, scope: 'repository:team/app:pull' },
    });
    const tokenUrl = `${ch.params.realm}?service=${encodeURIComponent(ch.params.service!)}&scope=${encodeURIComponent(ch.params.scope!)}`;
    const basic = `Basic ${Buffer.from('tester:secret').toString('base64')}`;
    const tok = await rawGet(tokenUrl, { authorization: basic });
    expect(tok.status).toBe(200);
    const body = JSON.parse(tok.body.toString()) as { token: string; access_token: string; expires_in: number; issued_at: string };
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBe(120);
    expect(Number.isNaN(Date.parse(body.issued_at))).toBe(false);
    const second = await rawGet(reg.url + path, { accept: MediaType.ociManifest, authorization: `Bearer ${body.token}` });
    expect(second.status).toBe(200);
    expect(second.headers['docker-content-digest']).toBe(im.manifestDigest);

    // Wrong credentials are refused by the token server itself.
    const wrong = await rawGet(tokenUrl, { authorization: `Basic ${Buffer.from('tester:bad').toString('base64')}` });
    expect(wrong.status).toBe(401);
    expect(ts.requests.at(-1)).toMatchObject({ status: 401, credentials: true, user: null });

    // Anonymous: a token is issued, but without access to a private repo.
    const anonTok = JSON.parse((await rawGet(tokenUrl)).body.toString()) as { token: string };
    const denied = await rawGet(reg.url + path, { authorization: `Bearer ${anonTok.token}` });
    expect(denied.status).toBe(401);
  });

  it('lets anonymous clients pull public/ repos and uses the OAuth2 POST form', async () => {
    const im = await smallImage({ marker: 'pub' });
    await pushImage(reg, 'public/tool', im, { auth: reg.credentials! });
    const anon = new TestRegistryClient(reg);
    const m = await anon.getManifest('public/tool', 'latest');
    expect(m.status).toBe(200);
    expect(reg.tokenServer!.requests.at(-1)).toMatchObject({ credentials: false, user: null });
    await expect(pushImage(reg, 'public/tool', await smallImage({ marker: 'x' }), { client: anon })).rejects.toThrow(/401/);

    const form = new URLSearchParams({
      grant_type: 'password',
      username: 'tester',
      password: 'secret',
      service: reg.tokenServer!.service,
      scope: 'repository:public/tool:pull',
      client_id: 's2n-test',
    });
    const res = await request(reg.tokenServer!.realm, {
      method: 'POST',
      body: form.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.statusCode).toBe(200);
    const json = (await res.body.json()) as { access_token: string; refresh_token: string };
    const ok = await rawGet(`${reg.url}/v2/public/tool/manifests/latest`, {
      authorization: `Bearer ${json.access_token}`,
      accept: MediaType.ociManifest,
    });
    expect(ok.status).toBe(200);
  });

  it('rejects tokens the registry should not trust', async () => {
    const ts = reg.tokenServer!;
    ts.mutateClaims = (c) => ({ ...c, exp: c.iat - 3600, nbf: c.iat - 7200 });
    try {
      const expired = ts.issue('tester', [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
      const res = await rawGet(`${reg.url}/v2/team/app/tags/list`, { authorization: `Bearer ${expired}` });
      expect(res.status).toBe(401);
    } finally {
      ts.mutateClaims = undefined;
    }
    const fresh = ts.issue('tester', [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
    expect((await rawGet(`${reg.url}/v2/team/app/tags/list`, { authorization: `Bearer ${fresh}` })).status).toBe(200);
  });

  it('can fail token requests on demand', async () => {
    const ts = reg.tokenServer!;
    ts.failNext(503, 1, '2');
    const url = `${ts.realm}?service=${ts.service}&scope=repository:public/x:pull`;
    const first = await rawGet(url);
    expect(first.status).toBe(503);
    expect(first.headers['retry-after']).toBe('2');
    expect(ts.requests.at(-1)).toMatchObject({ status: 503, scopes: ['repository:public/x:pull'] });
    expect((await rawGet(url)).status).toBe(200);
  });

  it('also works with a libtrust kid instead of x5c', async () => {
    const r2 = await startRegistry({ auth: 'token', tokenKeyHeader: 'kid' });
    try {
      const im = await smallImage();
      await pushImage(r2, 'k/app', im, { auth: r2.credentials! });
      const m = await new TestRegistryClient(r2, { auth: r2.credentials! }).getManifest('k/app', 'latest');
      expect(m.digest).toBe(im.manifestDigest);
    } finally {
      await r2.stop();
    }
  });

  it('computes libtrust key IDs in the documented shape', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expect(libtrustKeyId(publicKey)).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
  });
});

describe('fault proxy', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let blobDigest: Digest;
  let blob: Buffer;
  beforeAll(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg);
    // A 1 MiB incompressible layer so a reset can land mid-body.
    const chunks: Buffer[] = [];
    let h = createHash('sha256').update('seed').digest();
    for (let i = 0; i < (1 << 20) / 32; i++) {
      h = createHash('sha256').update(h).digest();
      chunks.push(h);
    }
    const im = await buildImage({ layers: [[file('big.bin', Buffer.concat(chunks))]] });
    blobDigest = im.layers[0]!.digest;
    blob = im.layers[0]!.blob;
    // Pushed through the proxy: upload Locations must be rewritten to it.
    await pushImage(proxy, 'fp/app', im);
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it('forwarded the push with Locations rewritten to the proxy', () => {
    const puts = proxy.log.filter((e) => e.method === 'PUT' && e.path.includes('/blobs/uploads/'));
    expect(puts.length).toBeGreaterThan(0);
    expect(puts.every((e) => e.status === 201)).toBe(true);
  });

  it('injects a 500 once, then passes through', async () => {
    const rule = proxy.addRule({ method: 'GET', path: /\/manifests\/latest$/, kind: 'status', status: 500 });
    const url = `${proxy.url}/v2/fp/app/manifests/latest`;
    const accept = { accept: MediaType.ociManifest };
    expect((await rawGet(url, accept)).status).toBe(500);
    const ok = await rawGet(url, accept);
    expect(ok.status).toBe(200);
    expect((JSON.parse(ok.body.toString()) as ImageManifest).layers[0]?.digest).toBe(blobDigest);
    expect(rule).toMatchObject({ hits: 1, remaining: 0 });
    expect(proxy.log.slice(-2).map((e) => [e.status, e.fault])).toEqual([
      [500, 'status'],
      [200, undefined],
    ]);
  });

  it('sends 429 with Retry-After, and delays', async () => {
    proxy.addRule({ path: '/v2/', kind: 'status', status: 429, retryAfter: '1' });
    const r = await rawGet(`${proxy.url}/v2/`);
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('1');
    proxy.addRule({ path: '/v2/', kind: 'delay', ms: 300 });
    const t = Date.now();
    expect((await rawGet(`${proxy.url}/v2/`)).status).toBe(200);
    expect(Date.now() - t).toBeGreaterThanOrEqual(290);
  });

  it('resets mid-body; a Range request then resumes against the upstream', async () => {
    const path = new RegExp(`/blobs/${blobDigest}$`);
    proxy.addRule({ method: 'GET', path, kind: 'reset', afterBytes: 200_000 });
    const url = `${proxy.url}/v2/fp/app/blobs/${blobDigest}`;
    const got: Buffer[] = [];
    const res = await request(url);
    expect(res.statusCode).toBe(200);
    expect(Number(res.headers['content-length'])).toBe(blob.length);
    await expect(
      (async () => {
        for await (const c of res.body as AsyncIterable<Buffer>) got.push(c);
      })(),
    ).rejects.toThrow();
    const have = Buffer.concat(got);
    expect(have.length).toBeLessThanOrEqual(200_000);
    expect(have.equals(blob.subarray(0, have.length))).toBe(true);

    const rest = await rawGet(url, { range: `bytes=${have.length}-` });
    expect(rest.status).toBe(206);
    expect(rest.headers['content-range']).toBe(`bytes ${have.length}-${blob.length - 1}/${blob.length}`);
    expect(sha256(Buffer.concat([have, rest.body]))).toBe(blobDigest);
    expect(proxy.log.at(-1)).toMatchObject({ range: `bytes=${have.length}-`, status: 206, fault: undefined });
    expect(proxy.log.at(-2)).toMatchObject({ fault: 'reset', status: 200 });
  });

  it('truncates, corrupts and over-fills bodies', async () => {
    const path = new RegExp(`/blobs/${blobDigest}$`);
    const url = `${proxy.url}/v2/fp/app/blobs/${blobDigest}`;

    proxy.addRule({ method: 'GET', path, kind: 'truncate', afterBytes: 1000 });
    const res = await request(url);
    const got: Buffer[] = [];
    await expect(
      (async () => {
        for await (const c of res.body as AsyncIterable<Buffer>) got.push(c);
      })(),
    ).rejects.toThrow();
    expect(Buffer.concat(got).length).toBe(1000);

    proxy.addRule({ method: 'GET', path, kind: 'corrupt' });
    const bad = await rawGet(url);
    expect(bad.body.length).toBe(blob.length);
    expect(sha256(bad.body)).not.toBe(blobDigest);
    const diff = [...bad.body].findIndex((b, i) => b !== blob[i]);
    expect(diff).toBe(Math.floor(blob.length / 2));

    proxy.addRule({ method: 'GET', path, kind: 'wrongSize', extraBytes: 7 });
    const long = await rawGet(url);
    expect(long.body.length).toBe(blob.length + 7);
    expect(long.body.subarray(0, blob.length).equals(blob)).toBe(true);

    // Rules are spent: the next request is clean.
    expect(sha256((await rawGet(url)).body)).toBe(blobDigest);
  });

  it('stalls until the client gives up', async () => {
    proxy.addRule({ method: 'GET', path: new RegExp(`/blobs/${blobDigest}$`), kind: 'stall', afterBytes: 10 });
    const res = await request(`${proxy.url}/v2/fp/app/blobs/${blobDigest}`, { bodyTimeout: 300 });
    await expect(res.body.arrayBuffer()).rejects.toThrow(/timeout/i);
  });
});

describe('cli runner', () => {
  it('runs a script in a clean sandboxed env, shared within a test', async () => {
    const stub = join(tempDir(), 'stub.mjs');
    await writeFile(
      stub,
      `let input = ''; for await (const c of process.stdin) input += c;
       console.log(JSON.stringify({ args: process.argv.slice(2), env: process.env, cwd: process.cwd(), input }));
       process.stderr.write('err\\n'); process.exitCode = 3;`,
    );
    process.env.S2N_HARNESS_LEAK = 'leak';
    try {
      const r = await runCli(['pull', 'x'], { entry: stub, input: 'hi', env: { EXTRA: '1', LANG: undefined } });
      expect(r).toMatchObject({ code: 3, signal: null, stderr: 'err\n', timedOut: false });
      const out = JSON.parse(r.stdout) as { args: string[]; env: Record<string, string>; cwd: string; input: string };
      const sb = cliSandbox();
      expect(out.args).toEqual(['pull', 'x']);
      expect(out.input).toBe('hi');
      expect(out.cwd).toBe(sb.dir);
      expect(out.env.HOME).toBe(sb.home);
      expect(out.env.S2N_OCI_ROOT).toBe(sb.root);
      expect(out.env.XDG_CONFIG_HOME).toBe(join(sb.home, '.config'));
      expect(out.env.EXTRA).toBe('1');
      expect(out.env.LANG).toBeUndefined();
      expect(out.env.S2N_HARNESS_LEAK).toBeUndefined();
      const r2 = await runCli([], { entry: stub, root: '/tmp/elsewhere' });
      expect((JSON.parse(r2.stdout) as { env: Record<string, string> }).env.S2N_OCI_ROOT).toBe('/tmp/elsewhere');
    } finally {
      delete process.env.S2N_HARNESS_LEAK;
    }
  });

  it('times out and kills; spawnCli hands out the child', async () => {
    const stub = join(tempDir(), 'sleep.mjs');
    await writeFile(stub, `setTimeout(() => {}, 60_000);`);
    const r = await runCli([], { entry: stub, timeoutMs: 300 });
    expect(r).toMatchObject({ timedOut: true, signal: 'SIGKILL', code: null });
    const child = spawnCli([], { entry: stub });
    const exited = new Promise((res) => child.once('exit', (_c, s) => res(s)));
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM');
  });

  it.skipIf(!existsSync(CLI_PATH))('runs the built CLI', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe.skipIf(!CAN_RUN_AS_USER)('runCli as the test user, and the cgroup2 shim', () => {
  const probe = join(tempDir('s2n-probe-'), 'probe.mjs');
  beforeAll(async () => {
    await writeFile(
      probe,
      "import { readFileSync } from 'node:fs';\n" +
        "const fs = readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').find((l) => l.split(' ')[4] === '/sys/fs/cgroup')?.split(' - ')[1]?.split(' ')[0];\n" +
        'console.log(JSON.stringify({ uid: process.getuid(), home: process.env.HOME, cgroupFs: fs }));\n',
      { mode: 0o644 },
    );
    const { chmodSync } = await import('node:fs');
    chmodSync(join(probe, '..'), 0o755);
  });

  it('runs as the user with a writable sandbox HOME', async () => {
    const r = await runCli([], { entry: probe, as: 'user' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { uid: number; home: string };
    expect(out.uid).toBe(testUser()?.uid);
    expect(statSync(out.home).uid).toBe(testUser()?.uid);
  });

  it('shows a pure cgroup2 /sys/fs/cgroup inside the shim and leaves the host untouched', async () => {
    const r = await runCli([], { entry: probe, as: 'user', cgroup2: true });
    expect((JSON.parse(r.stdout) as { cgroupFs: string }).cgroupFs).toBe('cgroup2');
    const host = await runCli([], { entry: probe });
    expect((JSON.parse(host.stdout) as { cgroupFs: string }).cgroupFs).not.toBe('cgroup2');
  });
});
