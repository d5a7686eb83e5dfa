/**
 * Answers registry auth challenges (docker registry token spec, RFC 6750):
 * `Bearer` → fetch a token from the realm (anonymously, with Basic
 * credentials, or by OAuth2 refresh with an identity token) and cache it per
 * (registry, scopes) until shortly before it expires; `Basic` → send the
 * credentials. The client asks `authorize()` before a request (so after the
 * first challenge no request pays a 401 round trip) and `challenged()` after
 * a 401; concurrent callers share one token request.
 */
import { S2nError } from '../../errors.js';
import { parseChallenges, type Challenge } from './challenge.js';
import type { Credential } from './credhelper.js';
import { lookupCredentials } from './credentials.js';
import { isLoopbackHost } from './hosts.js';
import { discard, printableUrl, readLimited, statusError, type HttpResponse, type HttpSend } from './http.js';
import { retryPolicy, withRetry, type RetryPolicy } from './retry.js';

/** Credentials for a registry (`HOST[:PORT]`), undefined for anonymous. */
export type CredentialLookup = (registry: string) => Promise<Credential | undefined>;

export interface AuthResolverOptions {
  send: HttpSend;
  /** Default: the auth files and helpers (credentials.ts). */
  credentials?: CredentialLookup;
  now?: () => number;
  retry?: RetryPolicy;
  /** OAuth2 client_id sent to token servers. */
  clientId?: string;
}

export interface AuthorizeOptions {
  signal?: AbortSignal;
  /** The registry is insecure: its token realm may be plain HTTP and unverified HTTPS. */
  insecure?: boolean;
}

interface TokenEntry {
  header: string;
  expiresAt: number;
}

interface TokenSlot {
  promise: Promise<TokenEntry>;
  value?: TokenEntry;
}

/** Default and floor for token lifetimes (token spec: never less than 60 s). */
const MIN_LIFETIME_S = 60;
const TOKEN_BODY_LIMIT = 1 << 20;

function authError(registry: string, message: string, hint: string, context: Record<string, unknown> = {}): S2nError {
  return new S2nError('EUNAUTHORIZED', message, { hint, context: { registry, ...context } });
}

export class AuthResolver {
  private readonly send: HttpSend;
  private readonly lookup: CredentialLookup;
  private readonly now: () => number;
  private readonly retry: RetryPolicy;
  private readonly clientId: string;
  private readonly tokens = new Map<string, TokenSlot>();
  private readonly challenges = new Map<string, Challenge>();
  private readonly creds = new Map<string, Promise<Credential | undefined>>();
  private readonly credsSent = new Set<string>();

  constructor(o: AuthResolverOptions) {
    this.send = o.send;
    this.lookup = o.credentials ?? ((r) => lookupCredentials(r));
    this.now = o.now ?? Date.now;
    this.retry = o.retry ?? retryPolicy();
    this.clientId = o.clientId ?? 's2n-oci';
  }

  /** Did we send credentials to `registry` (so a 401 means they are wrong)? */
  sentCredentials(registry: string): boolean {
    return this.credsSent.has(registry);
  }

  private credential(registry: string): Promise<Credential | undefined> {
    let p = this.creds.get(registry);
    if (p === undefined) {
      p = this.lookup(registry);
      this.creds.set(registry, p);
      p.catch(() => this.creds.delete(registry));
    }
    return p;
  }

  /** The Authorization header to send before any 401, when the registry's scheme is already known. */
  async authorize(registry: string, scopes: string[], o: AuthorizeOptions = {}): Promise<string | undefined> {
    const ch = this.challenges.get(registry);
    return ch === undefined ? undefined : this.headerFor(registry, ch, scopes, [], undefined, o);
  }

  /**
   * After a 401 with `wwwAuthenticate`: the header to retry with. `stale` is
   * what the refused request carried; it is never handed out again.
   */
  async challenged(
    registry: string,
    wwwAuthenticate: string[],
    scopes: string[],
    stale: string | undefined,
    o: AuthorizeOptions = {},
  ): Promise<string> {
    const all = parseChallenges(wwwAuthenticate);
    const ch = all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
    if (ch === undefined) {
      const got = all.map((c) => c.scheme).join(', ') || 'none';
      throw authError(registry, `authenticate to ${registry}: unsupported challenge (${got})`, 'the registry asks for an authentication scheme s2n-oci does not speak (only Bearer and Basic)');
    }
    this.challenges.set(registry, ch);
    const fromChallenge = ch.params.scope ? ch.params.scope.split(' ').filter((s) => s !== '') : [];
    return this.headerFor(registry, ch, scopes, fromChallenge, stale, o);
  }

  /** Rewrites the final 401 with the hint that fits: log in, or fix the credentials sent. */
  unauthorized(err: S2nError, registry: string): S2nError {
    const sent = this.credsSent.has(registry);
    return new S2nError('EUNAUTHORIZED', err.message, {
      hint: sent
        ? `check your credentials for ${registry}: run \`s2n-oci login ${registry}\` again`
        : `run \`s2n-oci login ${registry}\` (the repository may also not exist: registries answer 401 to hide that)`,
      cause: err.cause,
      context: { ...err.context, credentials: sent },
    });
  }

  private async headerFor(
    registry: string,
    ch: Challenge,
    scopes: string[],
    extraScopes: string[],
    stale: string | undefined,
    o: AuthorizeOptions,
  ): Promise<string> {
    if (ch.scheme === 'basic') {
      const c = await this.credential(registry);
      if (c === undefined || c.identityToken !== undefined) {
        throw authError(registry, `authenticate to ${registry}: the registry wants a username and password`, `run \`s2n-oci login ${registry}\``);
      }
      this.credsSent.add(registry);
      const h = `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
      if (h === stale) throw authError(registry, `authenticate to ${registry}: credentials rejected`, `check your credentials for ${registry}: run \`s2n-oci login ${registry}\` again`);
      return h;
    }
    const want = [...new Set(scopes.length > 0 ? scopes : extraScopes)].sort();
    const key = `${registry}|${ch.params.realm ?? ''}|${ch.params.service ?? ''}|${want.join(' ')}`;
    const cur = this.tokens.get(key);
    if (cur !== undefined) {
      if (cur.value === undefined) {
        try {
          const e = await cur.promise;
          if (e.header !== stale) return e.header;
        } catch {
          // The shared request failed; make our own below.
        }
      } else if (cur.value.header !== stale && this.fresh(cur.value)) {
        return cur.value.header;
      }
    }
    const slot: TokenSlot = { promise: this.fetchToken(registry, ch, [...new Set([...want, ...extraScopes])], o) };
    this.tokens.set(key, slot);
    slot.promise.then(
      (v) => (slot.value = v),
      () => {
        if (this.tokens.get(key) === slot) this.tokens.delete(key);
      },
    );
    return (await slot.promise).header;
  }

  private fresh(e: TokenEntry): boolean {
    return this.now() < e.expiresAt;
  }

  private async fetchToken(registry: string, ch: Challenge, scopes: string[], o: AuthorizeOptions): Promise<TokenEntry> {
    const realm = ch.params.realm;
    const action = `get token for ${registry}`;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new S2nError('EREGISTRY', `${action}: the Bearer challenge has no valid realm (${realm ?? 'none'})`, {
        hint: 'the registry is misconfigured: its WWW-Authenticate header must name a token URL',
        context: { registry },
      });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new S2nError('EREGISTRY', `${action}: unsupported token realm ${printableUrl(url)}`, { context: { registry } });
    }
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && o.insecure !== true) {
      // Credentials and tokens in clear text over the network: only where the user said the registry is insecure.
      throw new S2nError('EREGISTRY', `${action}: the token realm ${printableUrl(url)} is plain HTTP`, {
        hint: `mark ${registry} insecure in registries.json if you trust this network`,
        context: { registry, url: printableUrl(url) },
      });
    }
    const cred = await this.credential(registry);
    if (cred !== undefined) this.credsSent.add(registry);
    const service = ch.params.service;
    const res = await withRetry(
      async () => {
        let r: HttpResponse;
        if (cred?.identityToken !== undefined) {
          const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.identityToken, client_id: this.clientId });
          if (service) form.set('service', service);
          if (scopes.length > 0) form.set('scope', scopes.join(' '));
          r = await this.send({
            method: 'POST',
            url,
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: form.toString(),
            registry,
            ...(o.insecure ? { skipVerify: true } : {}),
            ...(o.signal ? { signal: o.signal } : {}),
            action,
            context: { registry },
          });
        } else {
          const u = new URL(url);
          if (service) u.searchParams.set('service', service);
          for (const s of scopes) u.searchParams.append('scope', s);
          if (cred !== undefined && cred.username) u.searchParams.set('account', cred.username);
          r = await this.send({
            method: 'GET',
            url: u,
            headers: cred ? { authorization: `Basic ${Buffer.from(`${cred.username}:${cred.password}`, 'utf8').toString('base64')}` } : {},
            registry,
            ...(o.insecure ? { skipVerify: true } : {}),
            ...(o.signal ? { signal: o.signal } : {}),
            action,
            context: { registry },
          });
        }
        if (r.status === 200) return r;
        const err = await statusError(r, action, { registry });
        if (r.status === 401) {
          throw authError(
            registry,
            cred ? `${action}: the token server rejected the credentials` : `${action}: the token server wants credentials`,
            cred ? `check your credentials for ${registry}: run \`s2n-oci login ${registry}\` again` : `run \`s2n-oci login ${registry}\``,
            { url: printableUrl(url), status: 401, credentials: cred !== undefined },
          );
        }
        throw err;
      },
      this.retry,
      o.signal,
    );
    let doc: unknown;
    try {
      const body = await readLimited(res.body, TOKEN_BODY_LIMIT, () => new S2nError('ELIMIT', `${action}: token response over 1 MiB`));
      doc = JSON.parse(body.toString('utf8'));
    } catch (e) {
      await discard(res.body);
      if (e instanceof S2nError) throw e;
      throw new S2nError('EREGISTRY', `${action}: token response is not JSON`, { cause: e, context: { registry, url: printableUrl(url) } });
    }
    const d = (doc ?? {}) as { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    const token = typeof d.token === 'string' && d.token !== '' ? d.token : typeof d.access_token === 'string' ? d.access_token : '';
    if (token === '') {
      throw new S2nError('EREGISTRY', `${action}: token response has no token`, { context: { registry, url: printableUrl(url) } });
    }
    const lifetime = Math.max(MIN_LIFETIME_S, typeof d.expires_in === 'number' && Number.isFinite(d.expires_in) ? d.expires_in : 0) * 1000;
    const now = this.now();
    // issued_at is the server's clock: use it only when it is plausible, else our receive time.
    const issued = typeof d.issued_at === 'string' ? Date.parse(d.issued_at) : NaN;
    const base = !Number.isNaN(issued) && issued <= now && now - issued < lifetime ? issued : now;
    // Renew a little early so a token does not expire in flight.
    const margin = Math.min(10_000, lifetime / 10);
    return { header: `Bearer ${token}`, expiresAt: base + lifetime - margin };
  }
}
