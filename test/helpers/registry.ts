/**
 * Runs the real distribution registry (Debian's docker-registry 2.8) on
 * 127.0.0.1 with its own config, storage and optional basic or token auth.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { killOnExit, makeTempDir, removeDir } from './tmp.js';
import { startTokenServer, type TokenAccessPolicy, type TokenServer } from './token-server.js';

const execFileP = promisify(execFile);

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export type RegistryAuth = 'none' | 'basic' | 'token';

export interface RegistryOptions {
  auth?: RegistryAuth;
  /** user → password. Default `{ tester: 'secret' }`. */
  users?: Record<string, string>;
  /** Token auth only. Default: users may do anything, anonymous may pull `public/*`. */
  tokenAccess?: TokenAccessPolicy;
  /** Token auth only: `expires_in` in seconds. Default 300. */
  tokenExpiresIn?: number;
  /** Token auth only: identify the signing key by `x5c` (default) or libtrust `kid`. */
  tokenKeyHeader?: 'x5c' | 'kid';
  /** Token auth only: serve OAuth2 `POST /token` (default true). */
  tokenOAuthPost?: boolean;
  /** Last word on the generated config (e.g. add `proxy.remoteurl` for a pull-through mirror). */
  configure?: (config: Record<string, unknown>) => void;
  /** How long to wait for `GET /v2/`. Default 15 s. */
  startTimeoutMs?: number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, the reference host part. */
  readonly host: string;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Temp dir holding config, storage, htpasswd and keys; removed by stop(). */
  readonly dir: string;
  readonly auth: RegistryAuth;
  readonly users: Readonly<Record<string, string>>;
  /** The first user, handy for push/login. Undefined when there are no users. */
  readonly credentials: { username: string; password: string } | undefined;
  readonly tokenServer?: TokenServer;
  readonly pid: number;
  /** The registry's recent stdout+stderr (last 64 KiB), for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (racy by nature: the caller retries on EADDRINUSE). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function htpasswdLines(users: Record<string, string>): Promise<string> {
  const lines: string[] = [];
  for (const [user, pass] of Object.entries(users)) {
    // The registry only accepts bcrypt (-B) entries.
    const { stdout } = await execFileP('htpasswd', ['-Bbn', user, pass]);
    lines.push(stdout.trim());
  }
  return lines.join('\n') + '\n';
}

/** The environment without REGISTRY_* overrides, which the registry would apply on top of our config. */
function registryEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_') && !k.startsWith('OTEL_')) env[k] = v;
  return env;
}

class RingLog {
  private buf = '';
  constructor(private readonly max = 64 * 1024) {}
  push(s: string): void {
    this.buf += s;
    if (this.buf.length > this.max) this.buf = this.buf.slice(-this.max);
  }
  text(): string {
    return this.buf;
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const probeAgent = new Agent({ connect: { rejectUnauthorized: false } });

async function waitReady(url: string, child: ChildProcess, log: RingLog, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once('exit', () => (exited = true));
  let lastErr = '';
  while (Date.now() < deadline) {
    if (exited) throw new Error(`docker-registry exited during startup (code ${child.exitCode}, signal ${child.signalCode}):\n${log.text()}`);
    try {
      // Readiness only: the certificate is the test's business, not the probe's.
      const res = await request(`${url}/v2/`, { headersTimeout: 1000, bodyTimeout: 1000, dispatcher: probeAgent });
      await res.body.dump();
      if (res.statusCode === 200 || res.statusCode === 401) return;
      lastErr = `status ${res.statusCode}`;
    } catch (e) {
      lastErr = String(e);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry at ${url} not ready after ${timeoutMs} ms (${lastErr}):\n${log.text()}`);
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = waitExit(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} not found: apt-get install docker-registry`);
  const auth = opts.auth ?? 'none';
  const users = opts.users ?? { tester: 'secret' };
  const dir = await makeTempDir('s2n-registry-');
  let tokenServer: TokenServer | undefined;

  try {
    let authConfig: Record<string, unknown> | undefined;
    if (auth === 'basic') {
      const path = join(dir, 'htpasswd');
      await writeFile(path, await htpasswdLines(users), { mode: 0o600 });
      authConfig = { htpasswd: { realm: 's2n-test-registry', path } };
    } else if (auth === 'token') {
      tokenServer = await startTokenServer({
        dir,
        users,
        ...(opts.tokenAccess ? { access: opts.tokenAccess } : {}),
        ...(opts.tokenExpiresIn !== undefined ? { expiresIn: opts.tokenExpiresIn } : {}),
        ...(opts.tokenKeyHeader ? { keyHeader: opts.tokenKeyHeader } : {}),
        ...(opts.tokenOAuthPost !== undefined ? { oauthPost: opts.tokenOAuthPost } : {}),
      });
      authConfig = {
        token: {
          realm: tokenServer.realm,
          service: tokenServer.service,
          issuer: tokenServer.issuer,
          rootcertbundle: tokenServer.certPath,
        },
      };
    }
    const storage = join(dir, 'storage');
    await mkdir(storage);
    const configPath = join(dir, 'config.yml');
    const useSetpriv = existsSync('/usr/bin/setpriv');

    // Port 0 cannot be passed to the registry, so probe a port and retry if someone takes it first.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const config: Record<string, unknown> = {
        version: '0.1',
        log: { level: 'warn', accesslog: { disabled: true } },
        storage: {
          filesystem: { rootdirectory: storage },
          delete: { enabled: true },
          maintenance: { uploadpurging: { enabled: false } },
        },
        http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex') },
        ...(authConfig ? { auth: authConfig } : {}),
      };
      opts.configure?.(config);
      // JSON is valid YAML, which spares us a YAML writer.
      await writeFile(configPath, JSON.stringify(config, null, 2));

      const log = new RingLog();
      // setpriv --pdeathsig: the kernel kills the registry even if this process is SIGKILLed.
      const [cmd, args] = useSetpriv
        ? ['/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', REGISTRY_BIN, 'serve', configPath]]
        : [REGISTRY_BIN, ['serve', configPath]];
      const child = spawn(cmd, args, { cwd: dir, env: registryEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.setEncoding('utf8').on('data', (s: string) => log.push(s));
      child.stderr?.setEncoding('utf8').on('data', (s: string) => log.push(s));
      const spawned = await new Promise<boolean>((resolve, reject) => {
        child.once('spawn', () => resolve(true));
        child.once('error', reject);
      });
      if (!spawned || child.pid === undefined) throw new Error('spawn docker-registry failed');
      const forget = killOnExit(child.pid);
      // A `configure` hook that adds http.tls makes it an HTTPS registry.
      const tls = (config.http as Record<string, unknown> | undefined)?.tls !== undefined;
      const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
      try {
        await waitReady(url, child, log, opts.startTimeoutMs ?? 15_000);
      } catch (e) {
        await killChild(child);
        forget();
        if (attempt < 5 && /address already in use/i.test(log.text())) continue;
        throw e;
      }

      let stopped: Promise<void> | undefined;
      const ts = tokenServer;
      const reg: TestRegistry = {
        host: `127.0.0.1:${port}`,
        url,
        dir,
        auth,
        users,
        credentials: Object.entries(users)
          .slice(0, 1)
          .map(([username, password]) => ({ username, password }))[0],
        ...(ts ? { tokenServer: ts } : {}),
        pid: child.pid,
        logs: () => log.text(),
        stop: () =>
          (stopped ??= (async () => {
            await killChild(child);
            forget();
            await ts?.stop();
            await removeDir(dir);
          })()),
      };
      return reg;
    }
  } catch (e) {
    await tokenServer?.stop();
    await removeDir(dir);
    throw e;
  }
}
