/**
 * Registry credentials, read the way podman and docker read them.
 *
 * Lookup walks these files in order and the first hit wins:
 *   1. $REGISTRY_AUTH_FILE
 *   2. $XDG_RUNTIME_DIR/containers/auth.json          (podman's login file)
 *   3. $XDG_CONFIG_HOME/containers/auth.json          (default ~/.config/...)
 *   4. $DOCKER_CONFIG/config.json                     (default ~/.docker/config.json)
 * In each file, `credHelpers[host]` (or else `credsStore`) names a
 * docker-credential helper that is asked first; then the inline
 * `auths[host]` entry (`auth` = base64 "user:pass", or `username`/`password`,
 * or `identitytoken`). Keys may carry a scheme and path
 * (`https://index.docker.io/v1/`); Docker Hub aliases all mean docker.io.
 *
 * `login` writes to, in order of preference: the explicit file, else
 * $REGISTRY_AUTH_FILE, else the helper that applies to the host, else
 * $XDG_RUNTIME_DIR/containers/auth.json (podman's choice: credentials last
 * for the session), else ~/.docker/config.json. Files are written 0600,
 * atomically (temp file + rename), keeping every other key.
 * `logout` removes the host from every file and helper above.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { S2nError, sysCode } from '../../errors.js';
import { helperErase, helperGet, helperStore, type Credential, type HelperOptions } from './credhelper.js';
import { DOCKER_HUB, normalizeRegistry } from './hosts.js';

export type { Credential } from './credhelper.js';

export interface CredentialOptions extends HelperOptions {
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** Use only this auth file (`--authfile`). */
  file?: string;
}

export interface AuthFile {
  path: string;
  /** Docker's config.json spells Docker Hub `https://index.docker.io/v1/`; podman's auth.json `docker.io`. */
  kind: 'containers' | 'docker';
}

/** The key Docker itself uses for Docker Hub, in files and towards helpers. */
export const DOCKER_HUB_LEGACY_KEY = 'https://index.docker.io/v1/';

function dockerConfigFile(env: NodeJS.ProcessEnv, home: string): string {
  return join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json');
}

function kindOf(path: string): AuthFile['kind'] {
  return basename(path) === 'config.json' ? 'docker' : 'containers';
}

/** The files consulted for lookups, in order (see module comment). */
export function authFiles(o: CredentialOptions = {}): AuthFile[] {
  if (o.file !== undefined) return [{ path: o.file, kind: kindOf(o.file) }];
  const env = o.env ?? process.env;
  const home = o.home ?? homedir();
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  paths.push(join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers', 'auth.json'));
  paths.push(dockerConfigFile(env, home));
  return [...new Set(paths)].map((p) => ({ path: p, kind: kindOf(p) }));
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fileError(path: string, what: string, cause?: unknown): S2nError {
  return new S2nError('ECREDENTIALS', `read auth file ${path}: ${what}`, {
    hint: 'fix or remove the file, then log in again',
    context: { path },
    ...(cause === undefined ? {} : { cause }),
  });
}

async function readAuthFile(path: string): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (sysCode(e) === 'ENOENT' || sysCode(e) === 'ENOTDIR') return undefined;
    throw fileError(path, (e as Error).message, e);
  }
  if (text.trim() === '') return {};
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw fileError(path, `invalid JSON: ${(e as Error).message}`, e);
  }
  if (!isObject(doc)) throw fileError(path, 'expected a JSON object');
  return doc;
}

/**
 * The registry an `auths`/`credHelpers` key names, or undefined for keys we
 * do not match (podman's per-repository `host/namespace` keys).
 */
export function registryOfKey(key: string): string | undefined {
  let k = key.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(k)) {
    try {
      k = new URL(k).host; // legacy keys: https://index.docker.io/v1/
    } catch {
      return undefined;
    }
  } else if (k.includes('/')) {
    return undefined;
  }
  return k === '' ? undefined : normalizeRegistry(k);
}

function matchingKeys(obj: Json, registry: string): string[] {
  const want = normalizeRegistry(registry);
  return Object.keys(obj).filter((k) => registryOfKey(k) === want);
}

function decodeEntry(entry: unknown, path: string, key: string): Credential | undefined {
  if (!isObject(entry)) return undefined;
  let username = typeof entry.username === 'string' ? entry.username : '';
  let password = typeof entry.password === 'string' ? entry.password : '';
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon < 0) throw fileError(path, `auths["${key}"].auth is not base64 of "user:password"`);
    username = plain.slice(0, colon);
    password = plain.slice(colon + 1);
  }
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') {
    return { username, password: '', identityToken: entry.identitytoken };
  }
  if (username === '' && password === '') return undefined; // `{}` placeholders left by credsStore logins
  return { username, password };
}

/** Server URLs to ask a helper for: Docker Hub under Docker's legacy key first. */
function helperServerUrls(registry: string): string[] {
  const r = normalizeRegistry(registry);
  return r === DOCKER_HUB ? [DOCKER_HUB_LEGACY_KEY, DOCKER_HUB] : [r];
}

function helperFor(doc: Json, registry: string): string | undefined {
  if (isObject(doc.credHelpers)) {
    for (const k of matchingKeys(doc.credHelpers, registry)) {
      const v = doc.credHelpers[k];
      if (typeof v === 'string' && v !== '') return v;
    }
  }
  return typeof doc.credsStore === 'string' && doc.credsStore !== '' ? doc.credsStore : undefined;
}

export interface FoundCredential {
  credential: Credential;
  /** The file or `docker-credential-NAME` it came from. */
  source: string;
}

/** Credentials for `registry` (`HOST[:PORT]`), or undefined for anonymous access. */
export async function findCredentials(registry: string, o: CredentialOptions = {}): Promise<FoundCredential | undefined> {
  for (const f of authFiles(o)) {
    const doc = await readAuthFile(f.path);
    if (doc === undefined) continue;
    const helper = helperFor(doc, registry);
    if (helper !== undefined) {
      for (const url of helperServerUrls(registry)) {
        const c = await helperGet(helper, url, o);
        if (c !== undefined) return { credential: c, source: `docker-credential-${helper}` };
      }
    }
    if (isObject(doc.auths)) {
      for (const k of matchingKeys(doc.auths, registry)) {
        const c = decodeEntry(doc.auths[k], f.path, k);
        if (c !== undefined) return { credential: c, source: f.path };
      }
    }
  }
  return undefined;
}

/** `findCredentials` without the source: the shape AuthResolver takes. */
export async function lookupCredentials(registry: string, o: CredentialOptions = {}): Promise<Credential | undefined> {
  return (await findCredentials(registry, o))?.credential;
}

/** Writes JSON as 0600 via a temp file in the same dir and a rename, so readers never see half a file. */
export async function writeJsonAtomic(path: string, doc: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(doc, null, '\t')}\n`);
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

export interface LoginResult {
  /** The auth file written, or `docker-credential-NAME`. */
  where: string;
}

function writeError(path: string, e: unknown): S2nError {
  return new S2nError('ECREDENTIALS', `write auth file ${path}: ${(e as Error).message}`, {
    hint: 'check that the directory is writable, or choose another file with REGISTRY_AUTH_FILE',
    cause: e,
    context: { path },
  });
}

async function loginTarget(registry: string, o: CredentialOptions): Promise<AuthFile | { helper: string }> {
  if (o.file !== undefined) return { path: o.file, kind: kindOf(o.file) };
  const env = o.env ?? process.env;
  if (env.REGISTRY_AUTH_FILE) return { path: env.REGISTRY_AUTH_FILE, kind: kindOf(env.REGISTRY_AUTH_FILE) };
  for (const f of authFiles(o)) {
    const doc = await readAuthFile(f.path);
    const helper = doc === undefined ? undefined : helperFor(doc, registry);
    if (helper !== undefined) return { helper };
  }
  if (env.XDG_RUNTIME_DIR) return { path: join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'), kind: 'containers' };
  return { path: dockerConfigFile(env, o.home ?? homedir()), kind: 'docker' };
}

/** Stores credentials for `registry`; where is described in the module comment. */
export async function login(registry: string, username: string, password: string, o: CredentialOptions = {}): Promise<LoginResult> {
  if (username.includes(':')) {
    throw new S2nError('ECREDENTIALS', `log in to ${registry}: the username must not contain ":"`, { context: { registry } });
  }
  const target = await loginTarget(registry, o);
  if ('helper' in target) {
    await helperStore(target.helper, helperServerUrls(registry)[0]!, username, password, o);
    return { where: `docker-credential-${target.helper}` };
  }
  const doc = (await readAuthFile(target.path)) ?? {};
  const auths: Json = isObject(doc.auths) ? doc.auths : {};
  for (const k of matchingKeys(auths, registry)) delete auths[k];
  const key = target.kind === 'docker' && normalizeRegistry(registry) === DOCKER_HUB ? DOCKER_HUB_LEGACY_KEY : normalizeRegistry(registry);
  auths[key] = { auth: Buffer.from(`${username}:${password}`, 'utf8').toString('base64') };
  doc.auths = auths;
  try {
    await writeJsonAtomic(target.path, doc);
  } catch (e) {
    throw writeError(target.path, e);
  }
  return { where: target.path };
}

export interface LogoutResult {
  /** Files and helpers the credentials were removed from; empty when there were none. */
  removed: string[];
}

/** Removes `registry` from every auth file and helper that could supply it. */
export async function logout(registry: string, o: CredentialOptions = {}): Promise<LogoutResult> {
  const removed: string[] = [];
  const helpersDone = new Set<string>();
  for (const f of authFiles(o)) {
    const doc = await readAuthFile(f.path);
    if (doc === undefined) continue;
    const helper = helperFor(doc, registry);
    if (helper !== undefined && !helpersDone.has(helper)) {
      helpersDone.add(helper);
      let any = false;
      for (const url of helperServerUrls(registry)) any = (await helperErase(helper, url, o)) || any;
      if (any) removed.push(`docker-credential-${helper}`);
    }
    if (isObject(doc.auths)) {
      const keys = matchingKeys(doc.auths, registry);
      if (keys.length > 0) {
        for (const k of keys) delete doc.auths[k];
        try {
          await writeJsonAtomic(f.path, doc);
        } catch (e) {
          throw writeError(f.path, e);
        }
        removed.push(f.path);
      }
    }
  }
  return { removed };
}
