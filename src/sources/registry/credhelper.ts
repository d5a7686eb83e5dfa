/**
 * The docker-credential-helpers protocol: run `docker-credential-NAME ACTION`,
 * write the server URL (get, erase) or `{ServerURL, Username, Secret}` (store)
 * on stdin, read `{Username, Secret}` from stdout. "credentials not found"
 * means anonymous, not an error.
 */
import { spawn } from 'node:child_process';
import { S2nError } from '../../errors.js';

export type HelperAction = 'get' | 'store' | 'erase';

export interface HelperResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one helper process; injectable so tests need no real helper. */
export type HelperRunner = (program: string, action: HelperAction, input: string, o: { env: NodeJS.ProcessEnv; timeoutMs: number }) => Promise<HelperResult>;

export interface HelperOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  run?: HelperRunner;
}

/** A username and a secret; `identityToken` when the secret is an OAuth2 refresh token. */
export interface Credential {
  username: string;
  password: string;
  /** docker login with an identity provider stores a refresh token instead of a password. */
  identityToken?: string;
}

function helperError(name: string, action: HelperAction, what: string, cause?: unknown): S2nError {
  return new S2nError('ECREDENTIALS', `run credential helper docker-credential-${name} ${action}: ${what}`, {
    hint: `check that docker-credential-${name} is installed and on PATH, or remove "${name}" from credHelpers/credsStore`,
    context: { helper: `docker-credential-${name}`, action },
    ...(cause === undefined ? {} : { cause }),
  });
}

export const spawnHelper: HelperRunner = (program, action, input, o) =>
  new Promise((resolve, reject) => {
    // spawn resolves `program` with o.env.PATH, so tests can put a fake helper first.
    // Own process group: a timeout kills the helper and anything it started.
    const child = spawn(program, [action], { env: o.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (f: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      f();
    };
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      child.stdout.destroy();
      child.stderr.destroy();
      finish(() => reject(Object.assign(new Error(`timed out after ${o.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    }, o.timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 1 << 16) stderr += d;
    });
    child.stdin.on('error', () => {
      // A helper that exits without reading stdin; its exit status says what happened.
    });
    child.on('error', (e) => finish(() => reject(e)));
    child.on('close', (code) => finish(() => resolve({ code, stdout, stderr })));
    child.stdin.end(input);
  });

function checkName(name: string): void {
  // The name becomes part of a program name: no paths, no shell characters.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new S2nError('ECREDENTIALS', `run credential helper "${name}": invalid helper name`, {
      hint: 'credHelpers and credsStore values name a docker-credential-NAME program, e.g. "pass" or "secretservice"',
      context: { helper: name },
    });
  }
}

async function invoke(name: string, action: HelperAction, input: string, o: HelperOptions): Promise<HelperResult> {
  checkName(name);
  const run = o.run ?? spawnHelper;
  try {
    return await run(`docker-credential-${name}`, action, input, { env: o.env ?? process.env, timeoutMs: o.timeoutMs ?? 30_000 });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw helperError(name, action, code === 'ENOENT' ? 'program not found' : (e as Error).message, e);
  }
}

function notFound(r: HelperResult): boolean {
  return /credentials not found/i.test(r.stdout) || /credentials not found/i.test(r.stderr);
}

function failure(r: HelperResult): string {
  const msg = (r.stderr.trim() || r.stdout.trim()).split('\n')[0] ?? '';
  return `exit status ${r.code ?? 'killed'}${msg ? `: ${msg}` : ''}`;
}

/** Credentials for `serverUrl`, or undefined when the helper has none. */
export async function helperGet(name: string, serverUrl: string, o: HelperOptions = {}): Promise<Credential | undefined> {
  const r = await invoke(name, 'get', serverUrl, o);
  if (r.code !== 0) {
    if (notFound(r)) return undefined;
    throw helperError(name, 'get', failure(r));
  }
  let doc: unknown;
  try {
    doc = JSON.parse(r.stdout);
  } catch (e) {
    throw helperError(name, 'get', 'output is not JSON', e);
  }
  const d = doc as { Username?: unknown; Secret?: unknown } | null;
  if (typeof d?.Username !== 'string' || typeof d.Secret !== 'string') throw helperError(name, 'get', 'output lacks Username/Secret');
  if (d.Secret === '' && d.Username === '') return undefined;
  // Docker's convention: Username "<token>" means Secret is an identity (refresh) token.
  if (d.Username === '<token>') return { username: '', password: '', identityToken: d.Secret };
  return { username: d.Username, password: d.Secret };
}

export async function helperStore(name: string, serverUrl: string, username: string, secret: string, o: HelperOptions = {}): Promise<void> {
  const r = await invoke(name, 'store', JSON.stringify({ ServerURL: serverUrl, Username: username, Secret: secret }), o);
  if (r.code !== 0) throw helperError(name, 'store', failure(r));
}

/** True when something was erased; "not found" is false, not an error. */
export async function helperErase(name: string, serverUrl: string, o: HelperOptions = {}): Promise<boolean> {
  const r = await invoke(name, 'erase', serverUrl, o);
  if (r.code === 0) return true;
  if (notFound(r)) return false;
  throw helperError(name, 'erase', failure(r));
}
