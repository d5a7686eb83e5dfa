/**
 * Connections to registries: which scheme to speak, which CAs and client
 * certificates to present (certs.d), which proxy to go through, and one
 * keep-alive undici dispatcher per (origin, TLS settings) so every request to
 * a registry reuses its connections.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { Agent, Client, Pool, ProxyAgent, buildConnector, errors, type Dispatcher } from 'undici';
import { S2nError, sysCode } from '../../errors.js';
import { ipInCidr, isCidr, isLoopbackHost, splitHostPort } from './hosts.js';

/**
 * certs.d roots, most specific first: the user's, then podman's, then
 * Docker's. Each holds `HOST[:PORT]/` dirs with `*.crt` (CAs) and
 * `*.cert` + `*.key` (client pairs).
 */
export function defaultCertDirs(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string[] {
  const config = env.XDG_CONFIG_HOME || join(home, '.config');
  return [join(config, 'containers', 'certs.d'), '/etc/containers/certs.d', '/etc/docker/certs.d'];
}

export interface TlsMaterial {
  /** Extra CA certificates (PEM), added to the default roots. */
  ca: string[];
  /** The first client certificate pair found. */
  clientCert: { cert: string; key: string } | undefined;
  /** Files read, for messages. */
  files: string[];
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** The certs.d dirs that exist for `hostPort` (`HOST[:PORT]`). */
export async function certDirsFor(roots: string[], hostPort: string): Promise<string[]> {
  const out: string[] = [];
  for (const r of roots) {
    const d = join(r, hostPort);
    if (await isDir(d)) out.push(d);
  }
  return out;
}

/** Reads CAs and client pairs for `hostPort` from every root that has a dir for it. */
export async function loadTlsMaterial(roots: string[], hostPort: string): Promise<TlsMaterial> {
  const m: TlsMaterial = { ca: [], clientCert: undefined, files: [] };
  for (const dir of await certDirsFor(roots, hostPort)) {
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (e) {
      throw tlsConfigError(dir, e);
    }
    for (const n of names) {
      const p = join(dir, n);
      try {
        if (n.endsWith('.crt')) {
          m.ca.push(await readFile(p, 'utf8'));
          m.files.push(p);
        } else if (n.endsWith('.cert')) {
          // Docker convention: client.cert pairs with client.key; a lone half is an error.
          const keyPath = join(dir, `${n.slice(0, -'.cert'.length)}.key`);
          const key = await readFile(keyPath, 'utf8').catch((e: unknown) => {
            throw new S2nError('ETLS', `load client certificate ${p}: missing key ${keyPath}`, {
              hint: 'put the matching private key next to the certificate, named NAME.key',
              cause: e,
              context: { path: p },
            });
          });
          if (m.clientCert === undefined) m.clientCert = { cert: await readFile(p, 'utf8'), key };
          m.files.push(p, keyPath);
        } else if (n.endsWith('.key')) {
          const certPath = join(dir, `${n.slice(0, -'.key'.length)}.cert`);
          if (!names.includes(`${n.slice(0, -'.key'.length)}.cert`)) {
            throw new S2nError('ETLS', `load client key ${p}: missing certificate ${certPath}`, {
              hint: 'put the matching client certificate next to the key, named NAME.cert',
              context: { path: p },
            });
          }
        }
      } catch (e) {
        if (e instanceof S2nError) throw e;
        throw tlsConfigError(p, e);
      }
    }
  }
  return m;
}

function tlsConfigError(path: string, e: unknown): S2nError {
  return new S2nError('ETLS', `read certificates ${path}: ${(e as Error).message}`, {
    hint: 'check the permissions of the certs.d directory',
    cause: e,
    context: { path },
  });
}

function envAny(env: NodeJS.ProcessEnv, ...names: string[]): string | undefined {
  for (const n of names) {
    const v = env[n];
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}

/**
 * Does NO_PROXY exclude `hostname:port`? Go's rules (what podman and docker
 * use): comma list; `*` matches all; `host` matches it and its subdomains;
 * `.host` only subdomains; `host:port` only that port; IPs and CIDRs match
 * addresses.
 */
export function noProxyMatches(noProxy: string, hostname: string, port: number): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  for (const raw of noProxy.split(',')) {
    let e = raw.trim().toLowerCase();
    if (e === '') continue;
    if (e === '*') return true;
    if (isCidr(e)) {
      if (ipInCidr(host, e)) return true;
      continue;
    }
    const hp = splitHostPort(e);
    if (hp.port !== undefined && hp.port !== port) continue;
    e = hp.hostname;
    if (e.startsWith('*.')) e = e.slice(1);
    if (e.startsWith('.')) {
      if (host.endsWith(e)) return true;
    } else if (host === e || host.endsWith(`.${e}`)) {
      return true;
    }
  }
  return false;
}

/** The proxy URL for `url`, or undefined for a direct connection. Loopback is never proxied. */
export function proxyForUrl(url: URL, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  if (isLoopbackHost(hostname)) return undefined;
  const proxy = url.protocol === 'https:' ? envAny(env, 'HTTPS_PROXY', 'https_proxy') : envAny(env, 'HTTP_PROXY', 'http_proxy');
  if (proxy === undefined) return undefined;
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  const noProxy = envAny(env, 'NO_PROXY', 'no_proxy');
  if (noProxy !== undefined && noProxyMatches(noProxy, hostname, port)) return undefined;
  // Go accepts "proxy:3128" without a scheme and reads it as http://.
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}

/** One way to reach a registry: an origin and whether its certificate is checked. */
export interface Endpoint {
  origin: string;
  /** True for `insecure` registries: HTTPS without certificate verification. */
  skipVerify: boolean;
}

export interface Route {
  dispatcher: Dispatcher;
  /** The proxy in use (credentials stripped), for EPROXY messages. */
  proxy: string | undefined;
}

export interface TransportOptions {
  /** certs.d roots; default `defaultCertDirs(env)`. */
  certDirs?: string[];
  /** Where proxy and XDG variables are read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Is plain HTTP spoken to this `HOST[:PORT]`? Default: loopback hosts without a certs.d dir. */
  plainHttp?: (hostPort: string) => Promise<boolean> | boolean;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** Longest silence while a body streams. */
  bodyTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
}

function redactUrl(u: string): string {
  try {
    const x = new URL(u);
    x.username = '';
    x.password = '';
    return x.toString().replace(/\/$/, '');
  } catch {
    return '<invalid proxy URL>';
  }
}

/** Node's default roots, which the `ca` option would otherwise replace. */
function defaultRoots(): readonly string[] {
  const t = tls as unknown as { getCACertificates?: (kind: string) => string[] };
  return typeof t.getCACertificates === 'function' ? t.getCACertificates('default') : tls.rootCertificates;
}

/** What `holdEndWhileParserPaused` touches of undici's HTTP/1 parser. */
interface UndiciParser {
  paused?: unknown;
  readMore?: () => void;
}

/**
 * Works around nodejs/undici#5360 (fixed in undici 8 only, which needs Node 22):
 * when a response body is read more slowly than it arrives, undici's HTTP/1
 * parser pauses; if the server then closes or resets the connection (any
 * `Connection: close` response: CDNs, proxies, a registry under load, a
 * dropped download), undici's socket 'end', 'error' (ECONNRESET) and 'close'
 * handlers assert that the parser is not paused, and the AssertionError,
 * thrown from an event handler, kills the process.
 *
 * - 'end' (FIN) is held back until the parser has been resumed (the body was
 *   read on: undici's resume() ends with readMore()), which is what the
 *   upstream fix amounts to. Every byte has gone to the parser by then, so
 *   only the event waits. The socket is half-open meanwhile, or Node would
 *   close it right after the (held) 'end' and undici cannot resume a parser on
 *   a closed socket; its write side is ended once 'end' is delivered, as Node
 *   would have done.
 * - ECONNRESET, or a 'close' no error explains, while paused is reported as
 *   the socket error it is: the body fails, and the blob download resumes
 *   with a Range request.
 */
export function holdEndWhileParserPaused(socket: Socket): void {
  const emit = socket.emit as (this: Socket, event: string | symbol, ...args: unknown[]) => boolean;
  const keys = new Map<string, symbol | undefined>();
  // undici's own per-socket state, under symbols named 'parser' and 'error'.
  const internal = (name: string): unknown => {
    if (!keys.get(name)) keys.set(name, Object.getOwnPropertySymbols(socket).find((k) => k.description === name));
    const k = keys.get(name);
    return k === undefined ? undefined : (socket as unknown as Record<symbol, unknown>)[k];
  };
  const parser = (): UndiciParser | undefined => (internal('parser') as UndiciParser | null | undefined) ?? undefined;
  const deliverEnd = (): void => {
    // Closed meanwhile: undici has let go of the socket, and its 'end' handler would fail on the missing parser.
    if (parser() === undefined) return;
    emit.call(socket, 'end');
    // What Node does after 'end' on a socket that is not half-open.
    if (!socket.destroyed && socket.writable) process.nextTick(() => socket.end());
  };
  socket.allowHalfOpen = true;
  socket.emit = function (this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    const p = parser();
    if (event === 'end') {
      const readMore = p?.readMore;
      if (p === undefined || p.paused !== true || typeof readMore !== 'function') {
        deliverEnd();
        return true;
      }
      p.readMore = function (this: UndiciParser): void {
        readMore.call(this);
        if (this.paused !== true) {
          delete this.readMore;
          process.nextTick(deliverEnd);
        }
      };
      return true;
    }
    if (event === 'error' && p?.paused === true && sysCode(args[0]) === 'ECONNRESET') {
      const e = args[0] as Error;
      return emit.call(this, 'error', Object.assign(new errors.SocketError(e.message), { cause: e }));
    }
    if (event === 'close' && p?.paused === true && !internal('error')) {
      emit.call(this, 'error', new errors.SocketError('closed'));
    }
    return emit.call(this, event, ...args);
  } as typeof socket.emit;
}

/** A connector whose sockets get `holdEndWhileParserPaused`. */
function guardConnector(connect: buildConnector.connector): buildConnector.connector {
  return (opts, callback) =>
    connect(opts, (...args: [null, Socket] | [Error, null]) => {
      if (args[1]) holdEndWhileParserPaused(args[1]);
      callback(...args);
    });
}

/** undici's default agent factory, with guarded connectors (for ProxyAgent, whose connector is its own). */
function guardedFactory(origin: string | URL, opts: object): Dispatcher {
  const o = opts as { connections?: number | null; connect?: unknown };
  const connect = typeof o.connect === 'function' ? guardConnector(o.connect as buildConnector.connector) : o.connect;
  const options = { ...opts, connect } as Pool.Options;
  return o.connections === 1 ? new Client(origin, options) : new Pool(origin, options);
}

export class Transport {
  readonly certDirs: string[];
  private readonly env: NodeJS.ProcessEnv;
  private readonly opts: TransportOptions;
  private readonly routes = new Map<string, Promise<Route>>();
  private closed = false;

  constructor(opts: TransportOptions = {}) {
    this.opts = opts;
    this.env = opts.env ?? process.env;
    this.certDirs = opts.certDirs ?? defaultCertDirs(this.env);
  }

  /**
   * How to reach `hostPort`, in the order to try. Loopback registries speak
   * plain HTTP (unless a certs.d dir says they have TLS); insecure ones try
   * HTTPS without verification, then HTTP, as podman does with `insecure = true`.
   */
  async endpoints(hostPort: string, o: { insecure?: boolean; scheme?: 'http' | 'https' } = {}): Promise<Endpoint[]> {
    if (o.scheme === 'http') return [{ origin: `http://${hostPort}`, skipVerify: false }];
    const https = { origin: `https://${hostPort}`, skipVerify: o.insecure === true };
    if (o.scheme === 'https') return [https];
    if (await this.isPlainHttp(hostPort)) return [{ origin: `http://${hostPort}`, skipVerify: false }];
    return o.insecure ? [https, { origin: `http://${hostPort}`, skipVerify: false }] : [https];
  }

  private async isPlainHttp(hostPort: string): Promise<boolean> {
    if (this.opts.plainHttp) return this.opts.plainHttp(hostPort);
    if (!isLoopbackHost(splitHostPort(hostPort).hostname)) return false;
    return (await certDirsFor(this.certDirs, hostPort)).length === 0;
  }

  /**
   * The dispatcher for `url`. `registry` adds that registry's certs.d CAs, so
   * a token server or blob store reached on its behalf trusts the same CAs.
   */
  async route(url: URL, o: { registry?: string; skipVerify?: boolean } = {}): Promise<Route> {
    if (this.closed) throw new S2nError('EINTERNAL', 'use transport: already closed');
    const proxy = proxyForUrl(url, this.env);
    const key = `${url.origin}|${o.registry ?? ''}|${o.skipVerify === true}|${proxy ?? ''}`;
    let r = this.routes.get(key);
    if (r === undefined) {
      r = this.build(url, o, proxy);
      this.routes.set(key, r);
      r.catch(() => this.routes.delete(key));
    }
    return r;
  }

  private async build(url: URL, o: { registry?: string; skipVerify?: boolean }, proxy: string | undefined): Promise<Route> {
    let tlsOpts: tls.ConnectionOptions = {};
    if (url.protocol === 'https:') {
      const hosts = [url.host, ...(o.registry && o.registry !== url.host ? [o.registry] : [])];
      const mats = await Promise.all(hosts.map((h) => loadTlsMaterial(this.certDirs, h)));
      const ca = mats.flatMap((m) => m.ca);
      const client = mats[0]?.clientCert;
      tlsOpts = {
        ...(ca.length > 0 ? { ca: [...defaultRoots(), ...ca] } : {}),
        ...(client ? { cert: client.cert, key: client.key } : {}),
        ...(o.skipVerify ? { rejectUnauthorized: false } : {}),
      };
    }
    const common = {
      keepAliveTimeout: this.opts.keepAliveTimeoutMs ?? 30_000,
      headersTimeout: this.opts.headersTimeoutMs ?? 120_000,
      bodyTimeout: this.opts.bodyTimeoutMs ?? 120_000,
    };
    const connectTimeout = this.opts.connectTimeoutMs ?? 30_000;
    if (proxy !== undefined) {
      return {
        dispatcher: new ProxyAgent({
          uri: proxy,
          ...common,
          proxyTls: { timeout: connectTimeout },
          requestTls: { ...tlsOpts, timeout: connectTimeout },
          factory: guardedFactory,
        }),
        proxy: redactUrl(proxy),
      };
    }
    return { dispatcher: new Agent({ ...common, connect: guardConnector(buildConnector({ ...tlsOpts, timeout: connectTimeout })) }), proxy: undefined };
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.routes.values()];
    this.routes.clear();
    await Promise.all(
      all.map(async (p) => {
        try {
          await (await p).dispatcher.close();
        } catch {
          // A route that failed to build or a dispatcher already gone has nothing to release.
        }
      }),
    );
  }
}
