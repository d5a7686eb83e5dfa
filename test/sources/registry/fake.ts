/**
 * Fake registries for the distribution-client unit tests: plain node:http(s)
 * servers on 127.0.0.1 with a random port that record every request. A
 * `FakeRegistry` speaks enough of the distribution API (ping, manifests,
 * blobs with Range) and of the token spec (Bearer realm on the same server,
 * or Basic) to drive the client; `hook` lets a test take over any request.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { emptyRegistriesConfig } from '../../../src/sources/registry/config.js';
import { RegistryClient, type RegistryClientOptions } from '../../../src/sources/registry/client.js';
import { Transport } from '../../../src/sources/registry/transport.js';

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface TestServer {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  requests: Recorded[];
  close(): Promise<void>;
}

export async function startServer(handler: Handler, tls?: { key: string; cert: string; ca?: string; requestCert?: boolean }): Promise<TestServer> {
  const requests: Recorded[] = [];
  const wrapped = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    Promise.resolve(handler(req, res)).catch((e: unknown) => {
      res.statusCode = 599;
      res.end(String(e));
    });
  };
  const server: Server = tls
    ? createHttpsServer({ key: tls.key, cert: tls.cert, ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.requestCert ? { requestCert: true, rejectUnauthorized: true } : {}) }, wrapped)
    : createServer(wrapped);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function sha256(b: Buffer | string): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

export function sendJson(res: ServerResponse, status: number, doc: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function registryError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { errors: [{ code, message }] }, headers);
}

export interface FakeRegistryOptions {
  auth?: 'none' | 'bearer' | 'basic';
  /** Accepted credentials. */
  users?: Record<string, string>;
  /** Tokens for clients without credentials (default true). */
  anonymous?: boolean;
  expiresIn?: number;
  /** Takes over a request when it returns true. Runs after auth checks unless `beforeAuth`. */
  hook?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
  beforeAuth?: boolean;
}

export interface ManifestEntry {
  body: Buffer;
  mediaType: string;
}

export class FakeRegistry {
  server!: TestServer;
  readonly manifests = new Map<string, ManifestEntry>(); // `repo:tag` and `repo@digest`
  readonly blobs = new Map<string, Buffer>(); // digest
  readonly repos = new Set<string>();
  readonly validTokens = new Set<string>();
  tokenRequests: Recorded[] = [];

  constructor(readonly o: FakeRegistryOptions = {}) {}

  static async start(o: FakeRegistryOptions = {}): Promise<FakeRegistry> {
    const r = new FakeRegistry(o);
    r.server = await startServer((req, res) => r.handle(req, res));
    return r;
  }

  get host(): string {
    return this.server.host;
  }
  get requests(): Recorded[] {
    return this.server.requests;
  }
  /** Requests to the API (not the token endpoint). */
  get apiRequests(): Recorded[] {
    return this.server.requests.filter((r) => r.url.startsWith('/v2/'));
  }

  addManifest(repo: string, tag: string | undefined, doc: unknown, mediaType = 'application/vnd.oci.image.manifest.v1+json'): ManifestEntry & { digest: string } {
    const body = Buffer.from(JSON.stringify(doc));
    const digest = sha256(body);
    const e = { body, mediaType };
    this.repos.add(repo);
    this.manifests.set(`${repo}@${digest}`, e);
    if (tag !== undefined) this.manifests.set(`${repo}:${tag}`, e);
    return { ...e, digest };
  }

  addBlob(repo: string, data: Buffer): string {
    const d = sha256(data);
    this.repos.add(repo);
    this.blobs.set(d, data);
    return d;
  }

  revokeTokens(): void {
    this.validTokens.clear();
  }

  close(): Promise<void> {
    return this.server.close();
  }

  private challenge(req: IncomingMessage, res: ServerResponse, scope: string | undefined): void {
    const scheme = this.o.auth ?? 'none';
    const h =
      scheme === 'basic'
        ? 'Basic realm="fake"'
        : `Bearer realm="${this.server.url}/token",service="fake-registry"${scope ? `,scope="${scope}"` : ''}`;
    registryError(res, 401, 'UNAUTHORIZED', 'authentication required', { 'www-authenticate': h });
    void req;
  }

  private authorized(req: IncomingMessage): boolean {
    const scheme = this.o.auth ?? 'none';
    const a = req.headers.authorization ?? '';
    if (scheme === 'none') return true;
    if (scheme === 'basic') {
      if (!a.startsWith('Basic ')) return false;
      const [u, p] = Buffer.from(a.slice(6), 'base64').toString().split(':');
      return u !== undefined && this.o.users?.[u] === p;
    }
    return a.startsWith('Bearer ') && this.validTokens.has(a.slice(7));
  }

  private token(req: IncomingMessage, res: ServerResponse): void {
    this.tokenRequests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const a = req.headers.authorization;
    if (a !== undefined) {
      const [u, p] = Buffer.from(a.replace(/^Basic /, ''), 'base64').toString().split(':');
      if (u === undefined || this.o.users?.[u] !== p) {
        sendJson(res, 401, { details: 'incorrect username or password' });
        return;
      }
    } else if (this.o.anonymous === false) {
      sendJson(res, 401, { details: 'anonymous access denied' });
      return;
    }
    const t = randomBytes(8).toString('hex');
    this.validTokens.add(t);
    sendJson(res, 200, { token: t, expires_in: this.o.expiresIn ?? 300, issued_at: new Date().toISOString() });
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token') return this.token(req, res);
    if (this.o.hook && this.o.beforeAuth && (await this.o.hook(req, res))) return;
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    const scope = m ? `repository:${m[1]}:pull` : undefined;
    if (!this.authorized(req)) return this.challenge(req, res, scope);
    if (this.o.hook && !this.o.beforeAuth && (await this.o.hook(req, res))) return;
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      sendJson(res, 200, {}, { 'docker-distribution-api-version': 'registry/2.0' });
      return;
    }
    if (!m) return registryError(res, 404, 'NOT_FOUND', 'no route');
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (!this.repos.has(repo)) return registryError(res, 404, 'NAME_UNKNOWN', 'repository name not known to registry');
    if (kind === 'manifests') {
      const e = this.manifests.get(ref.includes(':') ? `${repo}@${ref}` : `${repo}:${ref}`);
      if (!e) return registryError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      res.writeHead(200, { 'content-type': e.mediaType, 'content-length': e.body.length, 'docker-content-digest': sha256(e.body) });
      res.end(req.method === 'HEAD' ? undefined : e.body);
      return;
    }
    const blob = this.blobs.get(ref);
    if (!blob) return registryError(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry');
    sendBlob(req, res, blob);
  }
}

/** Serves `blob` honouring `Range: bytes=N-`. */
export function sendBlob(req: IncomingMessage, res: ServerResponse, blob: Buffer): void {
  const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (r) {
    const start = Number(r[1]);
    res.writeHead(206, { 'content-length': blob.length - start, 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` });
    res.end(blob.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-length': blob.length, 'content-type': 'application/octet-stream' });
  res.end(blob);
}

export interface TestClientOptions extends RegistryClientOptions {
  sleeps?: number[];
}

/**
 * A client isolated from the machine: no config files, no credential files,
 * no proxy variables, no system certs.d; sleeps recorded instead of waited.
 */
export function testClient(host: string, o: TestClientOptions = {}): RegistryClient {
  const sleeps = o.sleeps ?? [];
  const { sleeps: _ignored, ...rest } = o;
  return new RegistryClient(host, {
    config: emptyRegistriesConfig(),
    credentials: async () => undefined,
    transport: new Transport({ certDirs: [], env: {} }),
    ...rest,
    retry: {
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      random: () => 0.5,
      ...o.retry,
    },
  });
}

export async function readAll(s: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
