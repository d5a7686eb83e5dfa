/**
 * A small typed OCI distribution client for one registry: ping, manifests,
 * blobs. It wires the transport (scheme, TLS, proxy), the auth resolver
 * (challenges, tokens), retries and mirrors together; each of those lives in
 * its own file. Pulls try the configured mirrors first and fall back to the
 * registry itself. Push will reuse `exchange`/`request` (auth, endpoint
 * choice) with its own non-retried methods.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { S2nError } from '../../errors.js';
import { isDigest, parseDigest } from '../../oci/digest.js';
import { MANIFEST_ACCEPT, MediaType } from '../../oci/mediatypes.js';
import { registryApiHost } from '../../oci/reference.js';
import type { Descriptor, Digest } from '../../oci/types.js';
import { AuthResolver, type CredentialLookup } from './auth.js';
import { loadRegistriesConfig, registryEntry, type RegistriesConfig, type RegistriesConfigOptions } from './config.js';
import {
  abandon,
  discard,
  headerValue,
  headerValues,
  makeSender,
  printableUrl,
  readLimited,
  statusError,
  type HttpMethod,
  type HttpResponse,
  type HttpSend,
  type RequestContext,
} from './http.js';
import { normalizeRegistry } from './hosts.js';
import { openResumable } from './resumable.js';
import { retryDelay, retryPolicy, transientMark, withRetry, type RetryOptions, type RetryPolicy } from './retry.js';
import { Transport, type Endpoint } from './transport.js';

export interface RegistryClientOptions {
  /** Shared connections; default a new Transport owned (and closed) by this client. */
  transport?: Transport;
  /** Default: loaded from registries.json and daemon.json on first use. */
  config?: RegistriesConfig;
  configOptions?: RegistriesConfigOptions;
  /** Default: auth files and credential helpers. Pass a fixed lookup to verify a login. */
  credentials?: CredentialLookup;
  auth?: AuthResolver;
  retry?: RetryOptions;
  /** Try configured mirrors before the registry for pulls (default true). */
  mirrors?: boolean;
  /** Non-fatal surprises: a mirror that failed, a digest header that lies. */
  onWarning?: (message: string) => void;
  /** Injectable for tests; default undici through the transport. */
  send?: HttpSend;
  /** Blobs larger than this are pushed in chunks (PATCH); smaller in one PUT. Default 64 MiB. */
  chunkedUploadThreshold?: number;
  /** Chunk size for chunked pushes; one chunk is held in memory to resend it. Default 16 MiB. */
  uploadChunkSize?: number;
}

export const DEFAULT_CHUNKED_UPLOAD_THRESHOLD = 64 * 1024 * 1024;
export const DEFAULT_UPLOAD_CHUNK_SIZE = 16 * 1024 * 1024;

export interface GetManifestOptions {
  /** Default MANIFEST_ACCEPT. */
  accept?: string;
  /** Bodies larger than this are refused with ELIMIT. */
  maxBytes: number;
  signal?: AbortSignal;
}

export interface ManifestResponse {
  /** mediaType from Content-Type; digest computed from the body; size of the body. */
  descriptor: Descriptor;
  body: Buffer;
}

export interface GetBlobOptions {
  signal?: AbortSignal;
  onResume?: (offset: number, cause: unknown) => void;
}

export interface PingResult {
  /** The origin that answered, e.g. `https://registry-1.docker.io`. */
  origin: string;
  /** `Docker-Distribution-API-Version`, when sent. */
  apiVersion: string | undefined;
}

/** One place to send requests to: the registry or one of its mirrors. */
interface Target {
  /** Key for credentials, tokens and config: `docker.io`, `mirror.local:5000`. */
  registry: string;
  /** Repository prefix on a mirror, '' otherwise. */
  pathPrefix: string;
  candidates: Endpoint[];
  /** The candidate that answered first; later requests go straight there. */
  chosen: Endpoint | undefined;
  insecure: boolean;
  mirror: boolean;
}

interface Exchange {
  method: HttpMethod;
  /** Path under the origin, starting with /v2/. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer | Readable;
  /** Token scopes (`repository:NAME:pull`). */
  scopes: string[];
  signal?: AbortSignal | undefined;
  action: string;
  ctx: RequestContext;
}

const MAX_REDIRECTS = 5;

function isRedirect(s: number): boolean {
  return s === 301 || s === 302 || s === 303 || s === 307 || s === 308;
}

function hashOf(algorithm: string, data: Buffer): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Content-Type without parameters; when absent or generic, the body's own mediaType. */
function manifestMediaType(contentType: string | undefined, body: Buffer): string {
  const ct = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (ct !== '' && ct !== 'application/octet-stream' && ct !== 'text/plain') return ct;
  try {
    const doc = JSON.parse(body.toString('utf8')) as { mediaType?: unknown; schemaVersion?: unknown };
    if (typeof doc.mediaType === 'string') return doc.mediaType;
    if (doc.schemaVersion === 1) return MediaType.dockerSchema1;
  } catch {
    // Not JSON: whatever the header said; validation in copy.ts will refuse it.
  }
  return ct;
}

const REPOSITORY_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;

/** Names become URL paths: refuse anything the reference grammar would not produce. */
function checkNames(registry: string, repository: string, reference?: string): void {
  if (!REPOSITORY_RE.test(repository)) {
    throw new S2nError('EREFERENCE', `use repository "${repository}": not a valid repository name`, {
      hint: 'repository names are lowercase path components separated by /',
      context: { registry, repository },
    });
  }
  if (reference !== undefined && !reference.includes(':') && !TAG_RE.test(reference)) {
    throw new S2nError('EREFERENCE', `use tag "${reference}": not a valid tag`, {
      hint: 'tags are up to 128 letters, digits, _, . and -, not starting with . or -',
      context: { registry, repository, reference },
    });
  }
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

export class RegistryClient {
  /** The registry as references name it: `docker.io`, `localhost:5000`. */
  readonly registry: string;
  private readonly transport: Transport;
  private readonly ownsTransport: boolean;
  private readonly send: HttpSend;
  private readonly auth: AuthResolver;
  private readonly retry: RetryPolicy;
  private readonly o: RegistryClientOptions;
  private targetsP: Promise<{ origin: Target; mirrors: Target[] }> | undefined;

  constructor(registry: string, o: RegistryClientOptions = {}) {
    this.registry = normalizeRegistry(registry);
    this.o = o;
    this.ownsTransport = o.transport === undefined;
    this.transport = o.transport ?? new Transport();
    this.send = o.send ?? makeSender(this.transport);
    this.retry = retryPolicy(o.retry);
    this.auth = o.auth ?? new AuthResolver({ send: this.send, retry: this.retry, ...(o.credentials ? { credentials: o.credentials } : {}) });
  }

  private warn(msg: string): void {
    this.o.onWarning?.(msg);
  }

  private targets(): Promise<{ origin: Target; mirrors: Target[] }> {
    this.targetsP ??= this.buildTargets();
    this.targetsP.catch(() => (this.targetsP = undefined));
    return this.targetsP;
  }

  private async buildTargets(): Promise<{ origin: Target; mirrors: Target[] }> {
    const cfg = this.o.config ?? (await loadRegistriesConfig(this.o.configOptions));
    const entry = registryEntry(cfg, this.registry);
    if (entry.blocked) {
      throw new S2nError('EDENIED', `access ${this.registry}: the registry is blocked by configuration`, {
        hint: `remove "blocked" for ${this.registry} from ${cfg.sources.join(' or ') || 'registries.json'}`,
        context: { registry: this.registry },
      });
    }
    const origin: Target = {
      registry: this.registry,
      pathPrefix: '',
      candidates: await this.transport.endpoints(registryApiHost(this.registry), { insecure: entry.insecure }),
      chosen: undefined,
      insecure: entry.insecure,
      mirror: false,
    };
    const mirrors: Target[] = [];
    if (this.o.mirrors !== false) {
      for (const m of entry.mirrors) {
        const insecure = registryEntry(cfg, m.host).insecure;
        mirrors.push({
          registry: normalizeRegistry(m.host),
          pathPrefix: m.pathPrefix,
          candidates: await this.transport.endpoints(m.host, { insecure, ...(m.scheme ? { scheme: m.scheme } : {}) }),
          chosen: undefined,
          insecure,
          mirror: true,
        });
      }
    }
    return { origin, mirrors };
  }

  /** Sends to the target's chosen endpoint, or tries its candidates (insecure: HTTPS, then HTTP). */
  private async sendTo(t: Target, x: Exchange, headers: Record<string, string>): Promise<HttpResponse> {
    const go = (ep: Endpoint): Promise<HttpResponse> =>
      this.send({
        method: x.method,
        url: new URL(x.path, ep.origin),
        headers,
        ...(x.body !== undefined ? { body: x.body } : {}),
        registry: t.registry,
        ...(ep.skipVerify ? { skipVerify: true } : {}),
        ...(x.signal ? { signal: x.signal } : {}),
        action: x.action,
        context: x.ctx,
      });
    if (t.chosen) return go(t.chosen);
    let last: unknown;
    for (const ep of t.candidates) {
      try {
        const r = await go(ep);
        t.chosen = ep;
        return r;
      } catch (e) {
        // Only a failure to connect or to shake hands moves on to the next scheme.
        if (!(e instanceof S2nError) || (e.code !== 'ENETWORK' && e.code !== 'ETLS')) throw e;
        last = e;
      }
    }
    throw last;
  }

  /**
   * One authenticated exchange: send with what the auth resolver already
   * knows; on 401 answer the challenge and send once more. A second 401 is
   * EUNAUTHORIZED. Returns the response and the headers that got it.
   */
  private async exchange(t: Target, x: Exchange): Promise<{ res: HttpResponse; headers: Record<string, string> }> {
    const ao = { insecure: t.insecure, ...(x.signal ? { signal: x.signal } : {}) };
    const before = await this.auth.authorize(t.registry, x.scopes, ao);
    let headers = { ...x.headers, ...(before ? { authorization: before } : {}) };
    let res = await this.sendTo(t, x, headers);
    if (res.status !== 401) return { res, headers };
    // A stream body is gone: it cannot be sent again with the challenge answered.
    if (x.body instanceof Readable) throw this.auth.unauthorized(await statusError(res, x.action, x.ctx), t.registry);
    const www = headerValues(res.headers, 'www-authenticate');
    if (www.length === 0) throw this.auth.unauthorized(await statusError(res, x.action, x.ctx), t.registry);
    await discard(res.body);
    let after: string;
    try {
      after = await this.auth.challenged(t.registry, www, x.scopes, before, ao);
    } catch (e) {
      throw e instanceof S2nError ? e.withPrefix(x.action, { ...x.ctx }) : e;
    }
    headers = { ...x.headers, authorization: after };
    res = await this.sendTo(t, x, headers);
    if (res.status === 401) throw this.auth.unauthorized(await statusError(res, x.action, x.ctx), t.registry);
    return { res, headers };
  }

  /**
   * GET with retries, following redirects by hand: the Authorization header
   * goes only to the registry's own origin, never to blob storage elsewhere.
   */
  private async get(t: Target, x: Omit<Exchange, 'method'>, ok: (status: number) => boolean): Promise<HttpResponse> {
    return withRetry(
      async () => {
        const ex = await this.exchange(t, { ...x, method: 'GET' });
        let res = ex.res;
        const origin = res.url.origin;
        for (let hops = 0; isRedirect(res.status); hops++) {
          const loc = headerValue(res.headers, 'location');
          await discard(res.body);
          if (loc === undefined || hops >= MAX_REDIRECTS) {
            throw new S2nError('EREGISTRY', `${x.action}: ${loc === undefined ? 'redirect without Location' : 'too many redirects'}`, {
              context: { ...x.ctx, url: printableUrl(res.url), status: res.status },
            });
          }
          const next = new URL(loc, res.url);
          const headers = { ...ex.headers };
          if (next.origin !== origin) delete headers.authorization;
          res = await this.send({
            method: 'GET',
            url: next,
            headers,
            registry: t.registry,
            ...(t.chosen?.skipVerify ? { skipVerify: true } : {}),
            ...(x.signal ? { signal: x.signal } : {}),
            action: x.action,
            context: x.ctx,
          });
        }
        if (ok(res.status)) return res;
        throw await statusError(res, x.action, x.ctx);
      },
      this.retry,
      x.signal,
    );
  }

  /** Runs `fn` against each mirror, then the registry; the registry's failure is the one reported. */
  private async pull<T>(signal: AbortSignal | undefined, fn: (t: Target) => Promise<T>): Promise<T> {
    const { origin, mirrors } = await this.targets();
    const failed: Array<{ mirror: string; error: string }> = [];
    for (const m of mirrors) {
      try {
        return await fn(m);
      } catch (e) {
        if (isAborted(signal)) throw e;
        const msg = e instanceof Error ? e.message : String(e);
        failed.push({ mirror: m.registry, error: msg });
        this.warn(`mirror ${m.registry} failed, trying the next source: ${msg}`);
      }
    }
    try {
      return await fn(origin);
    } catch (e) {
      if (failed.length > 0 && e instanceof S2nError) {
        throw new S2nError(e.code, e.message, { hint: e.hint, cause: e.cause, context: { ...e.context, mirrors: failed } });
      }
      throw e;
    }
  }

  private repoOn(t: Target, repository: string): string {
    return t.pathPrefix ? `${t.pathPrefix}/${repository}` : repository;
  }

  /** GET /v2/: is the registry there, and do our credentials (if any) work? */
  async ping(o: { signal?: AbortSignal } = {}): Promise<PingResult> {
    const { origin } = await this.targets();
    const action = `ping registry ${this.registry}`;
    const res = await this.get(origin, { path: '/v2/', scopes: [], signal: o.signal, action, ctx: { registry: this.registry } }, (s) => s === 200);
    await discard(res.body);
    return { origin: res.url.origin, apiVersion: headerValue(res.headers, 'docker-distribution-api-version') };
  }

  /**
   * The manifest `reference` (tag or digest) of `repository`, read whole.
   * By digest the body must hash to it (EDIGEST otherwise); by tag the
   * digest is computed from the body, and a disagreeing Docker-Content-Digest
   * header only earns a warning.
   */
  async getManifest(repository: string, reference: string, o: GetManifestOptions): Promise<ManifestResponse> {
    checkNames(this.registry, repository, reference);
    const byDigest = reference.includes(':');
    const expected = byDigest ? parseDigest(reference) : undefined;
    const action = `fetch manifest ${this.registry}/${repository}${byDigest ? '@' : ':'}${reference}`;
    const ctx: RequestContext = { registry: this.registry, repository, reference };
    return this.pull(o.signal, async (t) => {
      const repo = this.repoOn(t, repository);
      const res = await this.get(
        t,
        {
          path: `/v2/${repo}/manifests/${reference}`,
          headers: { accept: o.accept ?? MANIFEST_ACCEPT },
          scopes: [`repository:${repo}:pull`],
          signal: o.signal,
          action,
          ctx,
        },
        (s) => s === 200,
      );
      const tooBig = (): S2nError =>
        new S2nError('ELIMIT', `${action}: manifest larger than ${o.maxBytes} bytes`, {
          hint: 'manifests are small JSON documents; this registry sent something else',
          context: { ...ctx, url: printableUrl(res.url), limit: o.maxBytes },
        });
      const declared = Number(headerValue(res.headers, 'content-length') ?? NaN);
      if (declared > o.maxBytes) {
        abandon(res.body);
        throw tooBig();
      }
      const body = await readLimited(res.body, o.maxBytes, tooBig);
      const mediaType = manifestMediaType(headerValue(res.headers, 'content-type'), body);
      let digest: Digest;
      if (expected !== undefined) {
        digest = hashOf(expected.algorithm, body);
        if (digest !== reference) {
          throw new S2nError('EDIGEST', `${action}: the registry sent content with digest ${digest}`, {
            hint: 'the registry or a proxy in between served the wrong content',
            context: { ...ctx, url: printableUrl(res.url), expected: reference, actual: digest },
          });
        }
      } else {
        digest = hashOf('sha256', body);
        const claimed = headerValue(res.headers, 'docker-content-digest');
        if (claimed !== undefined && isDigest(claimed) && claimed.startsWith('sha256:') && claimed !== digest) {
          this.warn(`${action}: Docker-Content-Digest ${claimed} does not match the body (${digest}); using the body's digest`);
        }
      }
      return { descriptor: { mediaType, digest, size: body.length }, body };
    });
  }

  /**
   * The blob `desc` of `repository` as a stream that resumes with Range
   * requests when the connection drops. Raw bytes: the caller verifies.
   */
  async getBlob(repository: string, desc: Descriptor, o: GetBlobOptions = {}): Promise<Readable> {
    checkNames(this.registry, repository);
    parseDigest(desc.digest); // the digest becomes part of a URL path: it must be well-formed
    const action = `fetch blob ${this.registry}/${repository}@${desc.digest}`;
    const ctx: RequestContext = { registry: this.registry, repository, digest: desc.digest };
    return this.pull(o.signal, async (t) => {
      const repo = this.repoOn(t, repository);
      const open = async (offset: number): Promise<{ body: HttpResponse['body']; skip: number }> => {
        const res = await this.get(
          t,
          {
            path: `/v2/${repo}/blobs/${desc.digest}`,
            headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
            scopes: [`repository:${repo}:pull`],
            signal: o.signal,
            action,
            ctx,
          },
          (s) => s === 200 || (offset > 0 && s === 206),
        );
        if (res.status === 200) return { body: res.body, skip: offset };
        const range = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(headerValue(res.headers, 'content-range') ?? '');
        if (range === null || Number(range[1]) !== offset) {
          abandon(res.body);
          throw new S2nError('EREGISTRY', `${action}: resume at byte ${offset} got Content-Range "${headerValue(res.headers, 'content-range') ?? ''}"`, {
            hint: 'the registry does not answer Range requests correctly; try again',
            context: { ...ctx, url: printableUrl(res.url), status: res.status },
          });
        }
        return { body: res.body, skip: 0 };
      };
      return openResumable({
        size: desc.size,
        open,
        policy: this.retry,
        action,
        context: { ...ctx },
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.onResume ? { onResume: o.onResume } : {}),
      });
    });
  }

  // ── push ────────────────────────────────────────────────────────────────
  // Pushes go to the registry itself, never to a mirror, with `pull,push` scope.

  private pushScopes(repository: string, extra: string[] = []): string[] {
    return [`repository:${repository}:pull,push`, ...extra];
  }

  /**
   * One exchange with the registry (no mirrors); retried on transient
   * failures unless the body is a stream or `retry` is false.
   */
  private async call(x: Omit<Exchange, 'ctx'> & { ctx: RequestContext }, ok: (status: number) => boolean, retry = true): Promise<HttpResponse> {
    const { origin } = await this.targets();
    const once = async (): Promise<HttpResponse> => {
      const { res } = await this.exchange(origin, x);
      if (ok(res.status)) return res;
      throw await statusError(res, x.action, x.ctx);
    };
    return x.body instanceof Readable || !retry ? once() : withRetry(once, this.retry, x.signal);
  }

  /** HEAD the blob: true when `repository` has it with the descriptor's size. */
  async hasBlob(repository: string, desc: Descriptor, o: { signal?: AbortSignal } = {}): Promise<boolean> {
    checkNames(this.registry, repository);
    parseDigest(desc.digest);
    const ctx: RequestContext = { registry: this.registry, repository, digest: desc.digest };
    const res = await this.call(
      {
        method: 'HEAD',
        path: `/v2/${repository}/blobs/${desc.digest}`,
        scopes: this.pushScopes(repository),
        signal: o.signal,
        action: `check blob ${this.registry}/${repository}@${desc.digest}`,
        ctx,
      },
      (s) => s === 200 || s === 404,
    );
    await discard(res.body);
    if (res.status !== 200) return false;
    const len = Number(headerValue(res.headers, 'content-length') ?? NaN);
    return Number.isNaN(len) || len === desc.size;
  }

  /**
   * Cross-repository mount: `POST …/blobs/uploads/?mount=DIGEST&from=REPO`.
   * True when the registry linked the blob (201); false when it opened an
   * upload instead (202; the session is left to expire), so the caller uploads.
   */
  async mountBlob(repository: string, desc: Descriptor, from: string, o: { signal?: AbortSignal } = {}): Promise<boolean> {
    checkNames(this.registry, repository);
    checkNames(this.registry, from);
    parseDigest(desc.digest);
    const ctx: RequestContext = { registry: this.registry, repository, digest: desc.digest };
    const q = new URLSearchParams({ mount: desc.digest, from });
    const res = await this.call(
      {
        method: 'POST',
        path: `/v2/${repository}/blobs/uploads/?${q.toString()}`,
        headers: { 'content-length': '0' },
        scopes: this.pushScopes(repository, [`repository:${from}:pull`]),
        signal: o.signal,
        action: `mount blob ${desc.digest} from ${from} into ${this.registry}/${repository}`,
        ctx,
      },
      (s) => s === 201 || s === 202,
    );
    await discard(res.body);
    return res.status === 201;
  }

  /**
   * Uploads a blob: POST opens a session; then either one PUT `?digest=`
   * streams the whole body (monolithic upload; the stream is sent once, so a
   * failure is reported, not retried), or, for blobs over
   * `chunkedUploadThreshold`, PATCHes of `uploadChunkSize` bytes each
   * followed by an empty PUT `?digest=` (see pushChunks). The registry checks
   * the digest.
   */
  async pushBlob(repository: string, desc: Descriptor, data: Readable, o: { signal?: AbortSignal } = {}): Promise<void> {
    checkNames(this.registry, repository);
    parseDigest(desc.digest);
    const ctx: RequestContext = { registry: this.registry, repository, digest: desc.digest };
    const action = `push blob ${this.registry}/${repository}@${desc.digest}`;
    const scopes = this.pushScopes(repository);
    let url: URL;
    try {
      const post = await this.call(
        { method: 'POST', path: `/v2/${repository}/blobs/uploads/`, headers: { 'content-length': '0' }, scopes, signal: o.signal, action, ctx },
        (s) => s === 202,
      );
      await discard(post.body);
      url = this.uploadLocation(post, action, ctx);
    } catch (e) {
      data.destroy();
      throw e;
    }
    const threshold = this.o.chunkedUploadThreshold ?? DEFAULT_CHUNKED_UPLOAD_THRESHOLD;
    if (desc.size > threshold) {
      try {
        url = await this.pushChunks(url, desc, data, scopes, o.signal, action, ctx);
      } catch (e) {
        data.destroy();
        throw e;
      }
      url.searchParams.set('digest', desc.digest);
      let res: HttpResponse;
      try {
        res = await this.call(
          { method: 'PUT', path: url.toString(), headers: { 'content-length': '0' }, scopes, signal: o.signal, action, ctx },
          (s) => s === 201 || s === 204,
        );
      } catch (e) {
        // A retried PUT whose first try did commit finds its session gone (404): the blob is there.
        if (e instanceof S2nError && e.code === 'ENOTFOUND' && (await this.hasBlob(repository, desc, o).catch(() => false))) return;
        throw e;
      }
      await discard(res.body);
      return;
    }
    url.searchParams.set('digest', desc.digest);
    const res = await this.call(
      {
        method: 'PUT',
        path: url.toString(),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
        body: data,
        scopes,
        signal: o.signal,
        action,
        ctx,
      },
      (s) => s === 201 || s === 204,
    );
    await discard(res.body);
  }

  /** The upload session URL from a response's `Location` (absolute or relative to the request). */
  private uploadLocation(res: HttpResponse, action: string, ctx: RequestContext, previous?: URL): URL {
    const loc = headerValue(res.headers, 'location');
    if (loc === undefined) {
      if (previous) return previous;
      throw new S2nError('EREGISTRY', `${action}: upload started without a Location`, { hint: 'the registry does not speak the distribution API correctly', context: { ...ctx } });
    }
    return new URL(loc, res.url);
  }

  /**
   * Sends `data` as PATCHes of `uploadChunkSize` bytes with `Content-Range:
   * START-END`, each to the Location the previous response gave. The source
   * is not seekable, so the chunk in flight is held in memory: when a PATCH
   * fails transiently, `GET <location>` tells (`Range: 0-N`) how much the
   * registry has, and the rest of the chunk is sent again from byte N+1.
   * Returns the Location for the closing PUT.
   */
  private async pushChunks(
    start: URL,
    desc: Descriptor,
    data: Readable,
    scopes: string[],
    signal: AbortSignal | undefined,
    action: string,
    ctx: RequestContext,
  ): Promise<URL> {
    const chunkSize = Math.max(1, this.o.uploadChunkSize ?? DEFAULT_UPLOAD_CHUNK_SIZE);
    let url = start;
    let offset = 0; // bytes the registry has
    const sendChunk = async (chunk: Buffer): Promise<void> => {
      let pending = chunk;
      for (let attempt = 1; ; attempt++) {
        try {
          const res = await this.call(
            {
              method: 'PATCH',
              path: url.toString(),
              headers: {
                'content-type': 'application/octet-stream',
                'content-range': `${offset}-${offset + pending.length - 1}`,
                'content-length': String(pending.length),
              },
              body: pending,
              scopes,
              signal,
              action,
              ctx,
            },
            (s) => s === 202,
            false,
          );
          await discard(res.body);
          url = this.uploadLocation(res, action, ctx, url);
          offset += pending.length;
          return;
        } catch (e) {
          if (attempt >= this.retry.attempts || transientMark(e) === undefined || isAborted(signal)) throw e;
          const ms = retryDelay(e, attempt, this.retry);
          this.retry.onRetry?.({ attempt, delayMs: ms, error: e as Error });
          await this.retry.sleep(ms, signal);
          // Where does the upload stand? The PATCH may have landed, wholly or in part.
          let st: HttpResponse;
          try {
            st = await this.call({ method: 'GET', path: url.toString(), scopes, signal, action, ctx }, (s) => s === 204 || s === 200);
          } catch (e2) {
            if (!(e2 instanceof S2nError) || isAborted(signal)) throw e2;
            // distribution cancels a session asked about with a stale Location (a PATCH it took whose answer was lost).
            const why = e instanceof Error ? e.message : String(e);
            throw new S2nError('EREGISTRY', `${action}: the chunk at byte ${offset} failed (${why}), and then the registry no longer had the upload: ${e2.message}`, {
              hint: 'the source cannot be rewound to start over; push again',
              cause: e,
              context: { ...ctx, offset },
            });
          }
          await discard(st.body);
          url = this.uploadLocation(st, action, ctx, url);
          const range = /^0-(\d+)$/.exec((headerValue(st.headers, 'range') ?? '').replace(/^bytes=/, '').trim());
          // distribution answers "0-0" for an empty upload as well as for one byte.
          const have = range === null ? 0 : Number(range[1]) === 0 && offset === 0 ? 0 : Number(range[1]) + 1;
          if (have < offset || have > offset + pending.length) {
            throw new S2nError('EREGISTRY', `${action}: after a failed chunk the registry has ${have} bytes, expected ${offset} to ${offset + pending.length}`, {
              hint: 'the upload session is inconsistent; push again',
              cause: e,
              context: { ...ctx, offset, have },
            });
          }
          pending = pending.subarray(have - offset);
          offset = have;
          if (pending.length === 0) return;
        }
      }
    };
    let parts: Buffer[] = [];
    let buffered = 0;
    for await (const piece of data as AsyncIterable<Buffer | string>) {
      let p = typeof piece === 'string' ? Buffer.from(piece) : piece;
      while (buffered + p.length >= chunkSize) {
        const take = chunkSize - buffered;
        parts.push(p.subarray(0, take));
        p = p.subarray(take);
        const chunk = Buffer.concat(parts);
        parts = [];
        buffered = 0;
        await sendChunk(chunk);
      }
      if (p.length > 0) {
        parts.push(p);
        buffered += p.length;
      }
    }
    if (buffered > 0) await sendChunk(Buffer.concat(parts));
    if (offset !== desc.size) {
      throw new S2nError('ESIZE', `${action}: the source gave ${offset} bytes, the descriptor says ${desc.size}`, { context: { ...ctx, expected: desc.size, actual: offset } });
    }
    return url;
  }

  /** PUT a manifest or index under a tag or its digest; returns the digest of `bytes`. */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string, o: { signal?: AbortSignal } = {}): Promise<Digest> {
    checkNames(this.registry, repository, reference);
    if (reference.includes(':')) parseDigest(reference);
    const ctx: RequestContext = { registry: this.registry, repository, reference };
    const res = await this.call(
      {
        method: 'PUT',
        path: `/v2/${repository}/manifests/${reference}`,
        headers: { 'content-type': mediaType },
        body: bytes,
        scopes: this.pushScopes(repository),
        signal: o.signal,
        action: `push manifest ${this.registry}/${repository}${reference.includes(':') ? '@' : ':'}${reference}`,
        ctx,
      },
      (s) => s === 201 || s === 200,
    );
    await discard(res.body);
    return hashOf('sha256', bytes);
  }

  async close(): Promise<void> {
    if (this.ownsTransport) await this.transport.close();
  }
}

/** A client for `registry` (`HOST[:PORT]`), e.g. for `login` to check credentials with `ping()`. */
export function createRegistryClient(registry: string, o: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient(registry, o);
}
