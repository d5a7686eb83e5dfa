/**
 * A reverse proxy on 127.0.0.1 in front of a real registry (or token server)
 * that injects faults by rule: error statuses, corrupted or over-long bodies,
 * truncated or reset connections mid-body, stalls and delays. Everything not
 * matched is forwarded untouched and streamed both ways, including Range.
 */
import { Agent, createServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  /** Answer with this status without asking upstream (e.g. 500, 502, 503; 429 with Retry-After). */
  | { kind: 'status'; status: number; retryAfter?: string; body?: string; headers?: Record<string, string> }
  /** Invert one byte of the body (same length): at `offset`, default the middle of the body. */
  | { kind: 'corrupt'; offset?: number }
  /** Append `extraBytes` bytes, Content-Length raised to match. */
  | { kind: 'wrongSize'; extraBytes: number }
  /** Announce the full Content-Length, send `afterBytes` bytes, then close cleanly (FIN). */
  | { kind: 'truncate'; afterBytes: number }
  /** Send `afterBytes` bytes, then reset the connection (RST). The client may see fewer bytes. */
  | { kind: 'reset'; afterBytes: number }
  /** Send `afterBytes` bytes, then nothing, keeping the connection open (for client timeouts). */
  | { kind: 'stall'; afterBytes: number }
  /** Wait `ms` before forwarding. */
  | { kind: 'delay'; ms: number }
  /** Forward the request, let upstream answer, then reset the connection before sending any of it (a lost response). */
  | { kind: 'drop' };

export type FaultKind = Fault['kind'];

export interface RuleMatch {
  /** Method(s) to match, case-insensitive; default any. */
  method?: string | string[];
  /** Matched against the request pathname (no query): RegExp, or a substring. */
  path: RegExp | string;
  /** How many matching requests get the fault. Default 1; Infinity allowed. */
  times?: number;
  /** Let this many matching requests through untouched first. Default 0. */
  skip?: number;
}

export type FaultRule = RuleMatch & Fault;

export interface ActiveRule {
  readonly rule: FaultRule;
  /** Requests still to be faulted. */
  remaining: number;
  /** Requests faulted so far. */
  hits: number;
  /** Matching requests still to let through before faulting. */
  skip: number;
}

export interface ProxyLogEntry {
  method: string;
  /** Pathname without query. */
  path: string;
  /** Path with query, as received. */
  url: string;
  /** Status sent to the client; null if the proxy failed before sending headers. */
  status: number | null;
  range: string | undefined;
  /** The request's Content-Range (chunked uploads). */
  contentRange: string | undefined;
  authorization: boolean;
  fault: FaultKind | undefined;
  /** Body bytes written to the client. */
  bytesSent: number;
  time: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` — use instead of the upstream's url. */
  readonly url: string;
  /** `127.0.0.1:PORT` */
  readonly host: string;
  readonly upstream: string;
  /** Every request, oldest first; entries are completed when the response ends. */
  readonly log: ProxyLogEntry[];
  readonly rules: readonly ActiveRule[];
  addRule(rule: FaultRule): ActiveRule;
  clearRules(): void;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

function matches(r: ActiveRule, method: string, path: string): boolean {
  if (r.remaining <= 0) return false;
  const m = r.rule.method;
  if (m !== undefined) {
    const list = (Array.isArray(m) ? m : [m]).map((x) => x.toUpperCase());
    if (!list.includes(method.toUpperCase())) return false;
  }
  const p = r.rule.path;
  return typeof p === 'string' ? path.includes(p) : p.test(path);
}

/** Writes `chunk`, resolving once it is handed to the socket. */
function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => res.write(chunk, (err) => (err ? reject(err) : resolve())));
}

export async function startFaultProxy(upstream: string | { url: string }, opts: { rules?: FaultRule[] } = {}): Promise<FaultProxy> {
  const upstreamUrl = new URL(typeof upstream === 'string' ? upstream : upstream.url);
  const upstreamOrigin = upstreamUrl.origin;
  const agent = new Agent({ keepAlive: true });
  const rules: ActiveRule[] = [];
  const log: ProxyLogEntry[] = [];
  const stalled = new Set<Socket>();
  let proxyOrigin = '';

  const addRule = (rule: FaultRule): ActiveRule => {
    const active: ActiveRule = { rule, remaining: rule.times ?? 1, hits: 0, skip: rule.skip ?? 0 };
    rules.push(active);
    return active;
  };
  for (const r of opts.rules ?? []) addRule(r);

  const rewriteLocation = (v: string): string => (v.startsWith(upstreamOrigin) ? proxyOrigin + v.slice(upstreamOrigin.length) : v);

  const handle = async (req: IncomingMessage, res: ServerResponse, entry: ProxyLogEntry): Promise<void> => {
    const method = req.method ?? 'GET';
    let active = rules.find((r) => matches(r, method, entry.path));
    if (active && active.skip > 0) {
      active.skip--;
      active = undefined;
    }
    let fault: Fault | undefined;
    if (active) {
      active.remaining--;
      active.hits++;
      fault = active.rule;
      entry.fault = fault.kind;
    }

    if (fault?.kind === 'status') {
      req.resume();
      const body =
        fault.body ??
        JSON.stringify({
          errors: [{ code: fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected fault', detail: null }],
        });
      const headers: OutgoingHttpHeaders = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        ...fault.headers,
      };
      if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
      res.writeHead(fault.status, headers);
      entry.status = fault.status;
      res.end(method === 'HEAD' ? undefined : body);
      return;
    }
    if (fault?.kind === 'delay') await new Promise((r) => setTimeout(r, fault.ms));

    // Forward. Host is set to the upstream so it builds its own URLs; Locations are rewritten below.
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = v;
    }
    headers.host = upstreamUrl.host;
    const up = await new Promise<IncomingMessage>((resolve, reject) => {
      const ureq = httpRequest(
        { protocol: upstreamUrl.protocol, hostname: upstreamUrl.hostname, port: upstreamUrl.port, method, path: req.url, headers, agent },
        resolve,
      );
      ureq.on('error', reject);
      req.pipe(ureq);
      req.on('error', (e) => ureq.destroy(e));
    });

    if (fault?.kind === 'drop') {
      await new Promise<void>((resolve) => {
        up.resume();
        up.once('end', resolve);
        up.once('error', () => resolve());
      });
      entry.status = null;
      res.socket?.resetAndDestroy();
      return;
    }

    // If the client goes away, stop reading upstream so the pooled socket is not left half-read.
    res.once('close', () => {
      if (!up.complete) up.destroy();
    });

    const outHeaders: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(up.headers)) {
      if (HOP_BY_HOP.has(k) || v === undefined) continue;
      outHeaders[k] = k === 'location' && typeof v === 'string' ? rewriteLocation(v) : v;
    }
    const status = up.statusCode ?? 502;
    const declared = up.headers['content-length'] !== undefined ? Number(up.headers['content-length']) : undefined;
    if (fault?.kind === 'wrongSize' && declared !== undefined) outHeaders['content-length'] = declared + fault.extraBytes;
    // A client reusing a connection we are about to break would see confusing errors on its next request.
    if (fault && fault.kind !== 'delay') outHeaders.connection = 'close';
    res.writeHead(status, outHeaders);
    entry.status = status;

    const limit =
      fault?.kind === 'truncate' || fault?.kind === 'reset' || fault?.kind === 'stall' ? fault.afterBytes : Infinity;
    const corruptAt = fault?.kind === 'corrupt' ? (fault.offset ?? Math.floor((declared ?? 0) / 2)) : -1;
    let pos = 0;
    for await (const c of up as AsyncIterable<Buffer>) {
      let chunk = c;
      if (corruptAt >= pos && corruptAt < pos + chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[corruptAt - pos] = (chunk[corruptAt - pos] ?? 0) ^ 0xff;
      }
      if (pos + chunk.length >= limit) {
        const head = chunk.subarray(0, limit - pos);
        if (head.length > 0) await write(res, head);
        pos += head.length;
        entry.bytesSent = pos;
        up.destroy();
        const sock = res.socket;
        if (!sock) return;
        if (fault?.kind === 'truncate') sock.end();
        else if (fault?.kind === 'reset') sock.resetAndDestroy();
        else stalled.add(sock); // stall: leave it hanging until the client gives up or we stop
        return;
      }
      await write(res, chunk);
      pos += chunk.length;
      entry.bytesSent = pos;
    }
    if (fault?.kind === 'wrongSize' && method !== 'HEAD') {
      const extra = Buffer.alloc(fault.extraBytes, 0x58);
      await write(res, extra);
      entry.bytesSent += extra.length;
    }
    res.end();
  };

  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const entry: ProxyLogEntry = {
      method: req.method ?? 'GET',
      path: u.pathname,
      url: req.url ?? '/',
      status: null,
      range: req.headers.range,
      contentRange: req.headers['content-range'],
      authorization: req.headers.authorization !== undefined,
      fault: undefined,
      bytesSent: 0,
      time: Date.now(),
    };
    log.push(entry);
    handle(req, res, entry).catch(() => {
      // Upstream unreachable or the client went away: answer 502 if still possible, else drop.
      if (!res.headersSent) {
        entry.status = 502;
        res.writeHead(502, { 'content-type': 'text/plain', connection: 'close' });
        res.end('fault-proxy: upstream error');
      } else {
        res.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  proxyOrigin = `http://127.0.0.1:${port}`;

  let stopped: Promise<void> | undefined;
  return {
    url: proxyOrigin,
    host: `127.0.0.1:${port}`,
    upstream: upstreamOrigin,
    log,
    rules,
    addRule,
    clearRules: () => {
      rules.length = 0;
    },
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        for (const s of stalled) s.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      })),
  };
}
