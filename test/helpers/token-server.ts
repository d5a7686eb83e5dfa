/**
 * A Docker token-auth server (spec/auth/token.md, jwt.md) for tests: issues
 * ES256 JWTs that Debian's docker-registry 2.8 accepts, and records every
 * request so tests can assert token caching and renewal.
 *
 * How the registry finds the key (distribution 2.8 registry/auth/token/token.go,
 * VerifySigningKey): `x5c` (cert chain verified against `rootcertbundle`) is
 * tried first, then `jwk`, then `kid` looked up among the bundle's public keys
 * by libtrust fingerprint. We send `x5c` by default; `kid` is selectable so
 * both paths stay covered.
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** One requested resource, parsed from `type:name:actions`. */
export interface ScopeRequest {
  type: string;
  name: string;
  actions: string[];
}

/** What the access policy is asked: who (null = anonymous) wants what. */
export interface AccessQuery extends ScopeRequest {
  user: string | null;
}

/** Returns the actions granted; the server intersects them with the request. */
export type TokenAccessPolicy = (q: AccessQuery) => string[];

/**
 * Default policy: any authenticated user may do anything (pull, push, delete,
 * catalog); anonymous clients may only pull repositories under `public/`.
 */
export const defaultAccessPolicy: TokenAccessPolicy = (q) => {
  if (q.user !== null) return ['pull', 'push', 'delete', '*'];
  if (q.type === 'repository' && q.name.startsWith('public/')) return ['pull'];
  return [];
};

/** Convenience policy from a table: user → list of (repo pattern, actions). */
export function tableAccessPolicy(
  table: Record<string, Array<{ repo: string | RegExp; actions: string[] }>>,
  anonymous: Array<{ repo: string | RegExp; actions: string[] }> = [],
): TokenAccessPolicy {
  return (q) => {
    if (q.type !== 'repository') return [];
    const rules = q.user === null ? anonymous : (table[q.user] ?? []);
    const out = new Set<string>();
    for (const r of rules) {
      const hit = typeof r.repo === 'string' ? r.repo === q.name : r.repo.test(q.name);
      if (hit) r.actions.forEach((a) => out.add(a));
    }
    return [...out];
  };
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: Array<{ type: string; name: string; actions: string[] }>;
}

export interface TokenRequestLog {
  method: 'GET' | 'POST';
  /** Raw scope strings as sent (space-joined scopes are split). */
  scopes: string[];
  service: string | null;
  /** Whether the request carried credentials (Basic header, or password/refresh grant). */
  credentials: boolean;
  /** The authenticated user, null when anonymous or refused. */
  user: string | null;
  grantType?: string;
  status: number;
  time: number;
}

export interface TokenServerOptions {
  /** Directory for key.pem / cert.pem (the registry's temp dir). */
  dir: string;
  service?: string;
  issuer?: string;
  users?: Record<string, string>;
  access?: TokenAccessPolicy;
  /** Lifetime in seconds put in `expires_in` and `exp`. Default 300. */
  expiresIn?: number;
  /** Which JOSE header field names the key. Default 'x5c'. */
  keyHeader?: 'x5c' | 'kid';
  /** Serve the OAuth2 POST /token endpoint. When false it answers 404, as Docker Hub's old servers did. Default true. */
  oauthPost?: boolean;
}

export interface TokenServer {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** The realm the registry advertises: `${url}/token`. */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly certPath: string;
  /** Every token request, oldest first. Tests may clear it with `.length = 0`. */
  readonly requests: TokenRequestLog[];
  /** May be changed at runtime (e.g. short tokens for renewal tests). */
  expiresIn: number;
  access: TokenAccessPolicy;
  /**
   * Edits claims before signing, e.g. to mint already-expired tokens. Note the
   * registry allows 60 s of clock leeway on `exp` and `nbf`.
   */
  mutateClaims: ((c: TokenClaims) => TokenClaims) | undefined;
  /**
   * Answer the next `times` token requests with `status` (e.g. 503, or 429
   * with `retryAfter`). The realm is fixed in the registry config, so this
   * stands in for a fault proxy in front of the token server.
   */
  failNext(status: number, times?: number, retryAfter?: string): void;
  /** Mints a token directly, bypassing HTTP (not logged). */
  issue(user: string | null, scopes: ScopeRequest[]): string;
  stop(): Promise<void>;
}

/** Parses `repository:ns/name:pull,push`; the name may itself contain `:` only in theory, so split at the ends. */
export function parseScope(s: string): ScopeRequest | null {
  const first = s.indexOf(':');
  const last = s.lastIndexOf(':');
  if (first <= 0 || last === first) return null;
  const actions = s
    .slice(last + 1)
    .split(',')
    .filter((a) => a !== '');
  return { type: s.slice(0, first), name: s.slice(first + 1, last), actions };
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** libtrust key ID: SHA-256 of the DER SPKI, first 240 bits, base32, 12 groups of 4. */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const sum = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of sum) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out.match(/.{4}/g)!.join(':');
}

function parseBasic(header: string | undefined): { user: string; pass: string } | null {
  if (header === undefined) return null;
  const m = /^Basic\s+(\S+)$/i.exec(header);
  if (!m?.[1]) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return null;
  return { user: decoded.slice(0, i), pass: decoded.slice(i + 1) };
}

async function readBody(req: IncomingMessage, limit = 1 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw new Error('token request body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const service = opts.service ?? 's2n-test-registry';
  const issuer = opts.issuer ?? 's2n-test-token-issuer';
  const users = opts.users ?? { tester: 'secret' };
  const keyHeader = opts.keyHeader ?? 'x5c';
  const oauthPost = opts.oauthPost ?? true;

  // Key in node, certificate by the openssl CLI: node cannot create X.509 certs.
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPath = join(opts.dir, 'token-key.pem');
  const certPath = join(opts.dir, 'token-cert.pem');
  await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await execFileP('openssl', [
    'req', '-x509', '-new', '-key', keyPath, '-out', certPath,
    '-days', '2', '-subj', '/CN=s2n-test-token-issuer', '-sha256',
  ]);
  const certPem = await readFile(certPath, 'utf8');
  const certDerB64 = certPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  const kid = libtrustKeyId(publicKey);

  const refreshTokens = new Map<string, string>(); // refresh token → user
  const failures: Array<{ status: number; times: number; retryAfter: string | undefined }> = [];
  const requests: TokenRequestLog[] = [];

  const issue = (user: string | null, scopes: ScopeRequest[]): string => {
    const now = Math.floor(Date.now() / 1000);
    const access: TokenClaims['access'] = [];
    for (const s of scopes) {
      const granted = new Set(state.access({ ...s, user }));
      const actions = s.actions.filter((a) => granted.has(a));
      // Keep entries with no actions: the spec says an empty intersection is not an error.
      access.push({ type: s.type, name: s.name, actions });
    }
    let claims: TokenClaims = {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + state.expiresIn,
      nbf: now - 1,
      iat: now,
      jti: randomBytes(12).toString('hex'),
      access,
    };
    if (state.mutateClaims) claims = state.mutateClaims(claims);
    const header =
      keyHeader === 'x5c' ? { typ: 'JWT', alg: 'ES256', x5c: [certDerB64] } : { typ: 'JWT', alg: 'ES256', kid };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    // JWS wants the raw r||s form, not DER.
    const sig = sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${b64url(sig)}`;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (u.pathname !== '/token') return sendJson(res, 404, { error: 'not found' });
    const splitScopes = (vals: string[]): string[] => vals.flatMap((v) => v.split(' ')).filter((s) => s !== '');
    const entry: TokenRequestLog = {
      method: req.method === 'POST' ? 'POST' : 'GET',
      // GET fields are filled in up front so even injected failures log them.
      scopes: req.method === 'POST' ? [] : splitScopes(u.searchParams.getAll('scope')),
      service: req.method === 'POST' ? null : u.searchParams.get('service'),
      credentials: req.headers.authorization !== undefined,
      user: null,
      status: 0,
      time: Date.now(),
    };
    requests.push(entry);
    const injected = failures[0];
    if (injected) {
      if (--injected.times <= 0) failures.shift();
      entry.status = injected.status;
      req.resume();
      return sendJson(res, injected.status, { errors: [{ code: 'UNAVAILABLE', message: 'injected fault' }] }, injected.retryAfter !== undefined ? { 'retry-after': injected.retryAfter } : {});
    }
    const finish = (status: number, body: unknown, headers?: Record<string, string>): void => {
      entry.status = status;
      sendJson(res, status, body, headers);
    };
    const checkService = (svc: string | null): boolean => svc === null || svc === service;

    if (req.method === 'GET') {
      const basic = parseBasic(req.headers.authorization);
      if (req.headers.authorization !== undefined && (basic === null || users[basic.user] !== basic.pass)) {
        return finish(401, { errors: [{ code: 'UNAUTHORIZED', message: 'invalid credentials' }] }, {
          'www-authenticate': `Basic realm="${service}"`,
        });
      }
      if (!checkService(entry.service)) return finish(400, { errors: [{ code: 'UNSUPPORTED', message: 'unknown service' }] });
      entry.user = basic?.user ?? null;
      const scopes = entry.scopes.map(parseScope).filter((s): s is ScopeRequest => s !== null);
      const token = issue(entry.user, scopes);
      const body: Record<string, unknown> = {
        token,
        access_token: token,
        expires_in: state.expiresIn,
        issued_at: new Date().toISOString(),
      };
      if (u.searchParams.get('offline_token') === 'true' && entry.user !== null) {
        const rt = randomBytes(16).toString('hex');
        refreshTokens.set(rt, entry.user);
        body.refresh_token = rt;
      }
      return finish(200, body);
    }

    if (req.method === 'POST') {
      if (!oauthPost) return finish(404, { error: 'not found' });
      const form = new URLSearchParams(await readBody(req));
      entry.grantType = form.get('grant_type') ?? undefined;
      entry.scopes = splitScopes(form.getAll('scope'));
      entry.service = form.get('service');
      if (!checkService(entry.service)) return finish(400, { error: 'invalid_request', error_description: 'unknown service' });
      let user: string;
      if (entry.grantType === 'password') {
        entry.credentials = true;
        const name = form.get('username') ?? '';
        if (users[name] === undefined || users[name] !== form.get('password')) {
          return finish(401, { error: 'invalid_grant', error_description: 'invalid credentials' });
        }
        user = name;
      } else if (entry.grantType === 'refresh_token') {
        entry.credentials = true;
        const found = refreshTokens.get(form.get('refresh_token') ?? '');
        if (found === undefined) return finish(401, { error: 'invalid_grant', error_description: 'unknown refresh token' });
        user = found;
      } else {
        return finish(400, { error: 'unsupported_grant_type' });
      }
      entry.user = user;
      const scopes = entry.scopes.map(parseScope).filter((s): s is ScopeRequest => s !== null);
      const rt = randomBytes(16).toString('hex');
      refreshTokens.set(rt, user);
      return finish(200, {
        access_token: issue(user, scopes),
        refresh_token: rt,
        expires_in: state.expiresIn,
        issued_at: new Date().toISOString(),
        scope: entry.scopes.join(' '),
      });
    }
    return finish(405, { error: 'method not allowed' });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(e) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  const state: TokenServer = {
    url,
    realm: `${url}/token`,
    service,
    issuer,
    certPath,
    requests,
    expiresIn: opts.expiresIn ?? 300,
    access: opts.access ?? defaultAccessPolicy,
    mutateClaims: undefined,
    failNext: (status, times = 1, retryAfter) => {
      failures.push({ status, times, retryAfter });
    },
    issue,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return state;
}
