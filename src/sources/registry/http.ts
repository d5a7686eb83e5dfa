/**
 * One HTTP exchange through the transport, and the translation of what can
 * go wrong into S2nErrors: low-level failures (ENETWORK, ETLS, EPROXY) here,
 * HTTP statuses and the registry's error JSON in `statusError`.
 * Redirects are never followed here; the client does that itself so that
 * credentials do not travel to another origin.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { S2nError, sysCode } from '../../errors.js';
import { isTransientNetworkCode, isTransientStatus, markTransient, parseRetryAfter } from './retry.js';
import type { Transport } from './transport.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string>;
  /** A stream can be sent once only (no answer to a 401 challenge, no retry). */
  body?: string | Buffer | Readable;
  signal?: AbortSignal;
  /** The registry the request is made for: its certs.d CAs are trusted too. */
  registry?: string;
  skipVerify?: boolean;
  /** "fetch manifest …" for error messages; default "METHOD URL". */
  action?: string;
  /** Facts added to any error's context. */
  context?: RequestContext;
}

export type ResponseBody = Dispatcher.ResponseData['body'];

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
  url: URL;
}

export type HttpSend = (req: HttpRequest) => Promise<HttpResponse>;

/** Facts every registry error carries. */
export interface RequestContext {
  registry?: string;
  repository?: string;
  reference?: string;
  digest?: string;
}

export const USER_AGENT = 's2n-oci/0.1';

/** A header as one string (the first when repeated). */
export function headerValue(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Every value of a header that may repeat (WWW-Authenticate). */
export function headerValues(h: IncomingHttpHeaders, name: string): string[] {
  const v = h[name.toLowerCase()];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** A URL safe to print: no credentials, no query (pre-signed blob URLs carry secrets there). */
export function printableUrl(u: URL): string {
  return `${u.origin}${u.pathname}`;
}

/** Discards a body without breaking keep-alive when it is small. */
export async function discard(body: ResponseBody): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    // The connection is gone either way; nothing to keep.
  }
}

/**
 * Drops a body we will not read (too large, wrong range). undici reports the
 * destroy as an AbortError 'error' event, which must not go unhandled.
 */
export function abandon(body: ResponseBody): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** Reads at most `max` bytes; more is ELIMIT (the rest is not downloaded). */
export async function readLimited(body: ResponseBody, max: number, what: () => S2nError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    n += b.length;
    // Leaving the loop by throwing destroys the body: the rest is never downloaded.
    if (n > max) throw what();
    chunks.push(b);
  }
  return Buffer.concat(chunks, n);
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'EPROTO',
]);

/** The innermost useful error code: Node wraps multi-address failures in AggregateError. */
function errorCode(e: unknown): string | undefined {
  const c = sysCode(e);
  if (c !== undefined && c !== 'UND_ERR_CONNECT') return c;
  if (e instanceof AggregateError) {
    for (const x of e.errors) {
      const ic = errorCode(x);
      if (ic !== undefined) return ic;
    }
  }
  const cause = (e as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== e ? errorCode(cause) : c;
}

function errorText(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) return errorText(e.errors[0]);
  const m = (e as Error | null)?.message;
  return m && m.length > 0 ? m : String(sysCode(e) ?? e);
}

/** Only our own signal counts: undici also names a refused proxy tunnel AbortError. */
function isAbort(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/**
 * An S2nError for a request that got no HTTP response. Transient ones are
 * marked for retry. `action` is the "verb noun" prefix.
 */
export function networkError(e: unknown, action: string, url: URL, proxy: string | undefined, ctx: RequestContext = {}): S2nError {
  if (e instanceof S2nError) return e;
  const code = errorCode(e);
  const text = errorText(e);
  const context = { ...ctx, url: printableUrl(url), ...(code ? { errno: code } : {}) };
  const host = url.host;
  if (code !== undefined && (TLS_CODES.has(code) || /certificate|ssl|tls/i.test(text)) && !/proxy/i.test(text)) {
    const plainHttp = code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(text);
    return new S2nError('ETLS', `${action}: TLS: ${text}`, {
      hint: plainHttp
        ? `${host} does not seem to speak HTTPS; if it is a plain-HTTP registry, mark it insecure in registries.json`
        : `certificate signed by unknown authority? add the registry's CA as /etc/containers/certs.d/${host}/ca.crt (or ~/.config/containers/certs.d/${host}/ca.crt), or mark the registry insecure in registries.json`,
      cause: e,
      context,
    });
  }
  if (proxy !== undefined && (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'UND_ERR_CONNECT_TIMEOUT' || /proxy/i.test(text))) {
    return markTransient(
      new S2nError('EPROXY', `${action}: proxy ${proxy}: ${text}`, {
        hint: 'check HTTPS_PROXY/HTTP_PROXY, or add the registry to NO_PROXY',
        cause: e,
        context: { ...context, proxy },
      }),
    );
  }
  const hints: Record<string, string> = {
    ECONNREFUSED: `nothing listens at ${host}: is the registry running and the port right?`,
    ENOTFOUND: `cannot resolve ${url.hostname}: check the registry name and DNS`,
    EAI_AGAIN: `cannot resolve ${url.hostname} right now: check DNS and the network`,
    UND_ERR_CONNECT_TIMEOUT: `${host} did not answer in time: check the network, firewall or proxy settings`,
    UND_ERR_HEADERS_TIMEOUT: `${host} accepted the connection but did not answer`,
    UND_ERR_BODY_TIMEOUT: `${host} stopped sending data`,
  };
  const err = new S2nError('ENETWORK', `${action}: ${text}`, {
    hint: hints[code ?? ''] ?? 'check the network connection to the registry',
    cause: e,
    context,
  });
  return isTransientNetworkCode(code) ? markTransient(err) : err;
}

/** Makes the HttpSend for a transport. Aborts propagate as the signal's reason. */
export function makeSender(transport: Transport, userAgent: string = USER_AGENT): HttpSend {
  return async (req) => {
    const route = await transport.route(req.url, {
      ...(req.registry !== undefined ? { registry: req.registry } : {}),
      ...(req.skipVerify ? { skipVerify: true } : {}),
    });
    try {
      const res = await request(req.url, {
        method: req.method,
        headers: { 'user-agent': userAgent, ...req.headers },
        dispatcher: route.dispatcher,
        ...(req.body !== undefined ? { body: req.body } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
      });
      return { status: res.statusCode, headers: res.headers, body: res.body, url: req.url };
    } catch (e) {
      if (isAbort(req.signal)) throw req.signal?.reason ?? e;
      throw networkError(e, req.action ?? `${req.method} ${printableUrl(req.url)}`, req.url, route.proxy, req.context);
    }
  };
}

export interface RegistryErrorEntry {
  code: string;
  message: string;
}

/** The `errors` array of a distribution-spec error body; [] when it is not one. */
export function parseRegistryErrors(text: string): RegistryErrorEntry[] {
  try {
    const doc = JSON.parse(text) as unknown;
    const errs = (doc as { errors?: unknown } | null)?.errors;
    if (!Array.isArray(errs)) return [];
    return errs.flatMap((e: unknown) => {
      const o = e as { code?: unknown; message?: unknown } | null;
      return typeof o?.code === 'string' ? [{ code: o.code, message: typeof o.message === 'string' ? o.message : '' }] : [];
    });
  } catch {
    return [];
  }
}

async function errorBody(body: ResponseBody): Promise<string> {
  try {
    return (await readLimited(body, 64 * 1024, () => new S2nError('ELIMIT', 'error body too large'))).toString('utf8');
  } catch {
    return '';
  }
}

function describe(errs: RegistryErrorEntry[], fallback: string): string {
  if (errs.length === 0) return fallback;
  return errs.map((e) => (e.message ? `${e.message} (${e.code})` : e.code)).join('; ');
}

/**
 * The S2nError for a non-success status (the body is consumed). 404 tells
 * "no such repository" (NAME_UNKNOWN) from "no such tag/digest"
 * (MANIFEST_UNKNOWN) and BLOB_UNKNOWN; 429/5xx are marked for retry.
 */
export async function statusError(res: HttpResponse, action: string, ctx: RequestContext = {}): Promise<S2nError> {
  const text = res.status === 204 || res.status === 304 ? '' : await errorBody(res.body);
  const errs = parseRegistryErrors(text);
  const codes = errs.map((e) => e.code);
  const context = { ...ctx, url: printableUrl(res.url), status: res.status, ...(codes.length ? { errors: codes } : {}) };
  const where = ctx.repository ? `${ctx.registry ?? res.url.host}/${ctx.repository}` : (ctx.registry ?? res.url.host);
  const s = res.status;
  if (s === 404) {
    let what = `not found (HTTP 404)`;
    let hint = `check the image name and tag`;
    if (codes.includes('NAME_UNKNOWN')) {
      what = `repository ${where} not found`;
      hint = 'check the repository name (Docker Hub official images live under library/)';
    } else if (codes.includes('MANIFEST_UNKNOWN')) {
      what = `manifest unknown: no tag or digest ${ctx.reference ?? ''} in ${where}`.replace('  ', ' ');
      // Some registries (distribution 2.8) answer MANIFEST_UNKNOWN for a repository that does not exist either.
      hint = `check the repository name and the tag or digest; \`skopeo list-tags docker://${where}\` lists the tags`;
    } else if (codes.includes('BLOB_UNKNOWN')) {
      what = `blob unknown to ${where}`;
      hint = 'the registry lost a blob its manifest refers to; tell its operator';
    }
    return new S2nError('ENOTFOUND', `${action}: ${what}`, { hint, context });
  }
  if (s === 401) {
    return new S2nError('EUNAUTHORIZED', `${action}: ${describe(errs, 'authentication required (HTTP 401)')}`, {
      hint: `run \`s2n-oci login ${ctx.registry ?? res.url.host}\``,
      context,
    });
  }
  if (s === 403) {
    return new S2nError('EDENIED', `${action}: ${describe(errs, 'access denied (HTTP 403)')}`, {
      hint: `your credentials for ${ctx.registry ?? res.url.host} do not grant access to ${where}`,
      context,
    });
  }
  if (s === 429) {
    const after = parseRetryAfter(headerValue(res.headers, 'retry-after'));
    return markTransient(
      new S2nError('ETOOMANY', `${action}: ${describe(errs, 'too many requests (HTTP 429)')}`, {
        hint: 'the registry rate-limits you; wait, log in (Docker Hub gives more pulls to accounts) or use a mirror',
        context,
      }),
      after,
    );
  }
  const err = new S2nError('EREGISTRY', `${action}: ${describe(errs, `HTTP ${s}`)}${errs.length ? ` (HTTP ${s})` : ''}`, {
    hint: s >= 500 ? 'the registry failed; try again later' : 'the registry refused the request',
    context,
  });
  return isTransientStatus(s) ? markTransient(err, parseRetryAfter(headerValue(res.headers, 'retry-after'))) : err;
}
