import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { emptyRegistriesConfig } from '../../../src/sources/registry/config.js';
import { makeSender } from '../../../src/sources/registry/http.js';
import { defaultCertDirs, loadTlsMaterial, noProxyMatches, proxyForUrl, Transport } from '../../../src/sources/registry/transport.js';
import { FakeRegistry, sendJson, startServer, testClient, type TestServer } from './fake.js';

const execFileP = promisify(execFile);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('proxies', () => {
  const table: Array<[string, string, number, boolean]> = [
    ['*', 'anything.example', 443, true],
    ['example.com', 'example.com', 443, true],
    ['example.com', 'registry.example.com', 443, true],
    ['example.com', 'notexample.com', 443, false],
    ['.example.com', 'example.com', 443, false],
    ['.example.com', 'a.example.com', 443, true],
    ['*.example.com', 'a.example.com', 443, true],
    ['reg.lan:5000', 'reg.lan', 5000, true],
    ['reg.lan:5000', 'reg.lan', 443, false],
    ['10.0.0.0/8', '10.1.2.3', 443, true],
    ['10.0.0.0/8', '192.168.1.1', 443, false],
    ['192.168.1.1', '192.168.1.1', 443, true],
    [' foo.io , Bar.IO ', 'bar.io', 443, true],
    ['', 'bar.io', 443, false],
  ];
  for (const [noProxy, host, port, want] of table) {
    it(`NO_PROXY="${noProxy}" ${want ? 'excludes' : 'keeps'} ${host}:${port}`, () => {
      expect(noProxyMatches(noProxy, host, port)).toBe(want);
    });
  }

  it('picks the proxy by scheme, never for loopback, and honours NO_PROXY', () => {
    const env = { HTTPS_PROXY: 'http://proxy:3128', http_proxy: 'plainproxy:8080', NO_PROXY: 'internal.lan' };
    expect(proxyForUrl(new URL('https://quay.io/v2/'), env)).toBe('http://proxy:3128');
    expect(proxyForUrl(new URL('http://quay.io/v2/'), env)).toBe('http://plainproxy:8080');
    expect(proxyForUrl(new URL('https://internal.lan/v2/'), env)).toBeUndefined();
    expect(proxyForUrl(new URL('https://127.0.0.1:5000/v2/'), env)).toBeUndefined();
    expect(proxyForUrl(new URL('http://localhost:5000/v2/'), env)).toBeUndefined();
    expect(proxyForUrl(new URL('http://[::1]:5000/v2/'), env)).toBeUndefined();
    expect(proxyForUrl(new URL('https://quay.io/v2/'), { https_proxy: 'http://lower:1' })).toBe('http://lower:1');
    expect(proxyForUrl(new URL('https://quay.io/v2/'), {})).toBeUndefined();
  });

  async function connectProxy(o: { answer?: number; targetPort?: number }): Promise<{ url: string; connects: string[] }> {
    const connects: string[] = [];
    const sockets = new Set<Socket>();
    const srv: Server = createServer();
    srv.on('connect', (req, client: Socket, head: Buffer) => {
      connects.push(req.url ?? '');
      sockets.add(client);
      if (o.answer !== undefined) {
        client.end(`HTTP/1.1 ${o.answer} Nope\r\n\r\n`);
        return;
      }
      // Every target is "resolved" to the fake registry on 127.0.0.1.
      const target = connect(o.targetPort ?? 1, '127.0.0.1', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        target.write(head);
        target.pipe(client);
        client.pipe(target);
      });
      sockets.add(target);
      target.on('error', () => client.destroy());
      client.on('error', () => target.destroy());
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          srv.close(() => r());
        }),
    );
    return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, connects };
  }

  it('tunnels through HTTP_PROXY', async () => {
    const reg = await FakeRegistry.start();
    cleanups.push(() => reg.close());
    const proxy = await connectProxy({ targetPort: reg.server.port });
    const transport = new Transport({ certDirs: [], env: { HTTP_PROXY: proxy.url } });
    cleanups.push(() => transport.close());
    const res = await makeSender(transport)({ method: 'GET', url: new URL('http://registry.example.com/v2/') });
    expect(res.status).toBe(200);
    await res.body.dump();
    expect(proxy.connects).toEqual(['registry.example.com:80']);
  });

  it('maps a refused or failing proxy to EPROXY', async () => {
    const dead = await startServer(() => undefined);
    await dead.close();
    const t1 = new Transport({ certDirs: [], env: { HTTP_PROXY: dead.url } });
    cleanups.push(() => t1.close());
    await expect(makeSender(t1)({ method: 'GET', url: new URL('http://registry.example.com/v2/') })).rejects.toMatchObject({
      code: 'EPROXY',
      context: { proxy: dead.url },
    });
    const p407 = await connectProxy({ answer: 407 });
    const t2 = new Transport({ certDirs: [], env: { HTTP_PROXY: p407.url } });
    cleanups.push(() => t2.close());
    await expect(makeSender(t2)({ method: 'GET', url: new URL('http://registry.example.com/v2/') })).rejects.toMatchObject({ code: 'EPROXY' });
  });
});

describe('certs.d', () => {
  let dir: string;
  let pem: { caCrt: string; serverKey: string; serverCrt: string; clientKey: string; clientCert: string };

  async function openssl(...args: string[]): Promise<void> {
    await execFileP('openssl', args, { cwd: dir });
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 's2n-certs-'));
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=s2n test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    await openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
    await openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext');
    await openssl('req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=s2n client');
    await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
    await openssl('x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.cert', '-days', '2', '-extfile', 'client.ext');
    const r = (n: string): Promise<string> => readFile(join(dir, n), 'utf8');
    pem = { caCrt: await r('ca.crt'), serverKey: await r('server.key'), serverCrt: await r('server.crt'), clientKey: await r('client.key'), clientCert: await r('client.cert') };
  }, 30_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function httpsRegistry(requestCert = false): Promise<TestServer> {
    const s = await startServer((_req, res) => sendJson(res, 200, {}), { key: pem.serverKey, cert: pem.serverCrt, ca: pem.caCrt, requestCert });
    cleanups.push(() => s.close());
    return s;
  }

  async function certsD(host: string, files: Record<string, string>): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), 's2n-certsd-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    await mkdir(join(root, host), { recursive: true });
    for (const [n, c] of Object.entries(files)) await writeFile(join(root, host, n), c);
    return root;
  }

  it('lists the user, podman and docker roots', () => {
    expect(defaultCertDirs({ XDG_CONFIG_HOME: '/x' }, '/home/u')).toEqual(['/x/containers/certs.d', '/etc/containers/certs.d', '/etc/docker/certs.d']);
    expect(defaultCertDirs({}, '/home/u')[0]).toBe('/home/u/.config/containers/certs.d');
  });

  it('fails with ETLS without the CA and succeeds with the CA from certs.d', async () => {
    const s = await httpsRegistry();
    const none = new Transport({ certDirs: [], env: {}, plainHttp: () => false });
    cleanups.push(() => none.close());
    const e = await testClient(s.host, { transport: none, retry: { attempts: 1 } })
      .ping()
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'ETLS' });
    expect((e as { hint: string }).hint).toContain(`/etc/containers/certs.d/${s.host}/ca.crt`);

    const root = await certsD(s.host, { 'ca.crt': pem.caCrt });
    const withCa = new Transport({ certDirs: ['/nonexistent', root], env: {}, plainHttp: () => false });
    cleanups.push(() => withCa.close());
    const ok = await testClient(s.host, { transport: withCa }).ping();
    expect(ok.origin).toBe(`https://${s.host}`);
  });

  it('speaks HTTPS to a loopback registry that has a certs.d dir', async () => {
    const s = await httpsRegistry();
    const root = await certsD(s.host, { 'ca.crt': pem.caCrt });
    const t = new Transport({ certDirs: [root], env: {} });
    cleanups.push(() => t.close());
    expect(await t.endpoints(s.host)).toEqual([{ origin: `https://${s.host}`, skipVerify: false }]);
    expect(await t.endpoints('127.0.0.1:1')).toEqual([{ origin: 'http://127.0.0.1:1', skipVerify: false }]);
    expect(await t.endpoints('quay.io', { insecure: true })).toEqual([
      { origin: 'https://quay.io', skipVerify: true },
      { origin: 'http://quay.io', skipVerify: false },
    ]);
    const ok = await testClient(s.host, { transport: t, config: emptyRegistriesConfig() }).ping();
    expect(ok.origin).toBe(`https://${s.host}`);
  });

  it('presents a client certificate pair (NAME.cert + NAME.key)', async () => {
    const s = await httpsRegistry(true);
    const caOnly = await certsD(s.host, { 'ca.crt': pem.caCrt });
    const t1 = new Transport({ certDirs: [caOnly], env: {} });
    cleanups.push(() => t1.close());
    await expect(testClient(s.host, { transport: t1, retry: { attempts: 1 } }).ping()).rejects.toMatchObject({ code: expect.stringMatching(/ETLS|ENETWORK/) });

    const full = await certsD(s.host, { 'ca.crt': pem.caCrt, 'client.cert': pem.clientCert, 'client.key': pem.clientKey });
    const m = await loadTlsMaterial([full], s.host);
    expect(m.clientCert?.cert).toBe(pem.clientCert);
    expect(m.files.map((f) => f.split('/').pop())).toEqual(['ca.crt', 'client.cert', 'client.key']);
    const t2 = new Transport({ certDirs: [full], env: {} });
    cleanups.push(() => t2.close());
    await expect(testClient(s.host, { transport: t2 }).ping()).resolves.toMatchObject({ origin: `https://${s.host}` });
  });

  it('refuses a client key without its certificate', async () => {
    const root = await certsD('reg.example', { 'client.key': 'x' });
    await expect(loadTlsMaterial([root], 'reg.example')).rejects.toMatchObject({ code: 'ETLS' });
  });
});
