/**
 * Test-side distribution client on plain undici: pushes test images and reads
 * manifests/blobs back, doing the Basic or Bearer challenge dance itself. It
 * exists so e2e tests can seed registries and inspect them independently of
 * the product's own client.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { MANIFEST_ACCEPT } from '../../src/oci/mediatypes.js';
import type { Digest } from '../../src/oci/types.js';
import type { LargeTestImage, TestImage, TestIndex } from './images.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface ClientOptions {
  auth?: Credentials;
  dispatcher?: Dispatcher;
}

/** A request body that can be sent again after an auth challenge. */
export type Body = Buffer | string | { length: number; open: () => Readable };

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: Body;
  /** Token scope to ask for on a Bearer challenge, e.g. `repository:foo:pull,push`. Default: the challenge's own scope. */
  scope?: string;
}

export interface BufferedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface StreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
}

/** One header value as a string (first if repeated). */
export function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (one challenge; quoted or token values). */
export function parseChallenge(value: string): Challenge {
  const m = /^\s*(\S+)\s*(.*)$/s.exec(value);
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/g;
  const rest = m?.[2] ?? '';
  for (let p = re.exec(rest); p; p = re.exec(rest)) {
    if (p[1]) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: (m?.[1] ?? '').toLowerCase(), params };
}

const basicHeader = (c: Credentials): string => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

/**
 * Minimal registry client. Remembers Basic after the first Basic challenge
 * and caches bearer tokens per scope, like real clients do, so a test's
 * token-request count reflects one login per scope.
 */
export class TestRegistryClient {
  readonly url: string;
  private readonly auth: Credentials | undefined;
  private readonly dispatcher: Dispatcher | undefined;
  private basic = false;
  private readonly tokens = new Map<string, string>();

  constructor(registry: string | { url: string }, opts: ClientOptions = {}) {
    this.url = (typeof registry === 'string' ? registry : registry.url).replace(/\/+$/, '');
    this.auth = opts.auth;
    this.dispatcher = opts.dispatcher;
  }

  /** Absolute URL for a path (`/v2/...`) or a Location value (absolute or relative). */
  resolve(pathOrUrl: string): string {
    return new URL(pathOrUrl, `${this.url}/`).toString();
  }

  private authHeader(scope: string | undefined): string | undefined {
    if (this.basic && this.auth) return basicHeader(this.auth);
    const t = this.tokens.get(scope ?? '');
    return t === undefined ? undefined : `Bearer ${t}`;
  }

  /** GETs a token from `realm`; exported behaviour for tests that want to drive the flow by hand. */
  async fetchToken(ch: Challenge, scope: string | undefined): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new Error('bearer challenge without realm');
    const u = new URL(realm);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    const sc = scope ?? ch.params.scope;
    if (sc) for (const s of sc.split(' ')) u.searchParams.append('scope', s);
    const res = await request(u, {
      headers: this.auth ? { authorization: basicHeader(this.auth) } : {},
      ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`token request to ${u} failed: ${res.statusCode} ${text}`);
    const json = JSON.parse(text) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (!token) throw new Error(`token response without token: ${text}`);
    return token;
  }

  private async send(method: string, url: string, opts: RequestOptions, authz: string | undefined): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { ...opts.headers };
    if (authz !== undefined) headers.authorization = authz;
    let body: Buffer | string | Readable | undefined;
    const b = opts.body;
    if (b !== undefined) {
      if (typeof b === 'string' || Buffer.isBuffer(b)) {
        body = b;
      } else {
        body = b.open();
        headers['content-length'] = String(b.length);
      }
    }
    return request(url, {
      method: method as Dispatcher.HttpMethod,
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}),
    });
  }

  /** A request with auth handled; the body is returned as a stream (the caller must consume or dump it). */
  async requestStream(method: string, pathOrUrl: string, opts: RequestOptions = {}): Promise<StreamResponse> {
    const url = this.resolve(pathOrUrl);
    let res = await this.send(method, url, opts, this.authHeader(opts.scope));
    if (res.statusCode === 401) {
      const www = header(res.headers, 'www-authenticate');
      const ch = www ? parseChallenge(www) : undefined;
      // Nothing to answer the challenge with: hand the 401 back as it is.
      if (!ch || (ch.scheme === 'basic' && !this.auth) || (ch.scheme !== 'basic' && ch.scheme !== 'bearer')) {
        return { status: res.statusCode, headers: res.headers, body: res.body };
      }
      await res.body.dump();
      let authz: string;
      if (ch.scheme === 'basic' && this.auth) {
        this.basic = true;
        authz = basicHeader(this.auth);
      } else {
        const token = await this.fetchToken(ch, opts.scope);
        this.tokens.set(opts.scope ?? '', token);
        authz = `Bearer ${token}`;
      }
      res = await this.send(method, url, opts, authz);
    }
    return { status: res.statusCode, headers: res.headers, body: res.body };
  }

  async request(method: string, pathOrUrl: string, opts: RequestOptions = {}): Promise<BufferedResponse> {
    const res = await this.requestStream(method, pathOrUrl, opts);
    const chunks: Buffer[] = [];
    for await (const c of res.body as AsyncIterable<Buffer>) chunks.push(c);
    return { status: res.status, headers: res.headers, body: Buffer.concat(chunks) };
  }

  /** GET a manifest; `accept` defaults to every manifest and index type. */
  async getManifest(repo: string, ref: string, accept = MANIFEST_ACCEPT): Promise<BufferedResponse & { digest?: Digest; mediaType?: string }> {
    const res = await this.request('GET', `/v2/${repo}/manifests/${ref}`, {
      headers: { accept },
      scope: `repository:${repo}:pull`,
    });
    const digest = header(res.headers, 'docker-content-digest') as Digest | undefined;
    const mediaType = header(res.headers, 'content-type');
    return { ...res, ...(digest ? { digest } : {}), ...(mediaType ? { mediaType } : {}) };
  }

  async getBlob(repo: string, digest: Digest, headers: Record<string, string> = {}): Promise<BufferedResponse> {
    return this.request('GET', `/v2/${repo}/blobs/${digest}`, { headers, scope: `repository:${repo}:pull` });
  }

  async hasBlob(repo: string, digest: Digest): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`, { scope: `repository:${repo}:pull,push` });
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw new Error(`HEAD blob ${digest}: ${res.status} ${res.body.toString()}`);
  }

  /** Monolithic upload: POST to open a session, PUT ?digest= with the whole body. Skips blobs already present. */
  async pushBlob(repo: string, digest: Digest, data: Buffer | { path: string }): Promise<'uploaded' | 'exists'> {
    const scope = `repository:${repo}:pull,push`;
    if (await this.hasBlob(repo, digest)) return 'exists';
    const post = await this.request('POST', `/v2/${repo}/blobs/uploads/`, { scope, headers: { 'content-length': '0' } });
    const loc = header(post.headers, 'location');
    if (post.status !== 202 || !loc) throw new Error(`start upload of ${digest}: ${post.status} ${post.body.toString()}`);
    const u = new URL(this.resolve(loc));
    u.searchParams.set('digest', digest);
    let body: Body;
    if (Buffer.isBuffer(data)) {
      body = data;
    } else {
      const { size } = await stat(data.path);
      body = { length: size, open: () => createReadStream(data.path) };
    }
    const put = await this.request('PUT', u.toString(), {
      scope,
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (put.status !== 201) throw new Error(`upload ${digest}: ${put.status} ${put.body.toString()}`);
    return 'uploaded';
  }

  async putManifest(repo: string, ref: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const res = await this.request('PUT', `/v2/${repo}/manifests/${ref}`, {
      scope: `repository:${repo}:pull,push`,
      body: bytes,
      headers: { 'content-type': mediaType },
    });
    if (res.status !== 201) throw new Error(`put manifest ${repo}:${ref}: ${res.status} ${res.body.toString()}`);
    return header(res.headers, 'docker-content-digest') as Digest;
  }

  async deleteManifest(repo: string, digest: Digest): Promise<number> {
    const res = await this.request('DELETE', `/v2/${repo}/manifests/${digest}`, { scope: `repository:${repo}:*` });
    return res.status;
  }
}

export interface PushOptions extends ClientOptions {
  /** Tags to PUT the top manifest under. Default `['latest']`. Pass [] to push by digest only. */
  tags?: string[];
  /** Also PUT the top manifest by digest. Default true. */
  byDigest?: boolean;
  /** Reuse a client (and its cached tokens). */
  client?: TestRegistryClient;
}

export interface PushResult {
  /** Digest of the top manifest or index. */
  digest: Digest;
  uploaded: Digest[];
  skipped: Digest[];
  /** `HOST/REPO@sha256:…` with the registry's host. */
  reference: string;
}

export type Pushable = TestImage | LargeTestImage | TestIndex;

function isIndex(x: Pushable): x is TestIndex {
  return 'indexBytes' in x;
}

async function pushBlobsOf(c: TestRegistryClient, repo: string, im: TestImage | LargeTestImage, r: PushResult): Promise<void> {
  for (const [digest, data] of im.blobs as Map<Digest, Buffer | string>) {
    const outcome = await c.pushBlob(repo, digest, typeof data === 'string' ? { path: data } : data);
    (outcome === 'uploaded' ? r.uploaded : r.skipped).push(digest);
  }
}

/**
 * Pushes an image (blobs, then manifest) or an index (every child image by
 * digest, then the index) to `repo`, tagged per `opts.tags`.
 */
export async function pushImage(registry: string | { url: string }, repo: string, x: Pushable, opts: PushOptions = {}): Promise<PushResult> {
  const c = opts.client ?? new TestRegistryClient(registry, opts);
  const topBytes = isIndex(x) ? x.indexBytes : x.manifestBytes;
  const topType = x.mediaType;
  const topDigest = isIndex(x) ? x.indexDigest : x.manifestDigest;
  const r: PushResult = {
    digest: topDigest,
    uploaded: [],
    skipped: [],
    reference: `${new URL(c.url).host}/${repo}@${topDigest}`,
  };
  if (isIndex(x)) {
    for (const im of x.images) {
      await pushBlobsOf(c, repo, im, r);
      await c.putManifest(repo, im.manifestDigest, im.manifestBytes, im.mediaType);
    }
  } else {
    await pushBlobsOf(c, repo, x, r);
  }
  if (opts.byDigest ?? true) await c.putManifest(repo, topDigest, topBytes, topType);
  for (const tag of opts.tags ?? ['latest']) await c.putManifest(repo, tag, topBytes, topType);
  return r;
}
