import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { helperGet } from '../../../src/sources/registry/credhelper.js';
import { authFiles, findCredentials, login, logout, registryOfKey, type CredentialOptions } from '../../../src/sources/registry/credentials.js';

let dir: string;
let home: string;
let run: string;
let bin: string;
let helperState: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 's2n-creds-'));
  home = join(dir, 'home');
  run = join(dir, 'run');
  bin = join(dir, 'bin');
  helperState = join(dir, 'helper-state');
  await Promise.all([mkdir(home, { recursive: true }), mkdir(run, { recursive: true }), mkdir(bin), mkdir(helperState)]);
  // A fake docker-credential-test: knows one server, records store/erase input.
  await writeFile(
    join(bin, 'docker-credential-test'),
    `#!/bin/sh
input=$(cat)
echo "$1 $input" >> "$HELPER_STATE/calls"
case "$1" in
  get)
    case "$input" in
      helper.example) echo '{"ServerURL":"helper.example","Username":"helperuser","Secret":"helperpass"}' ;;
      https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"refresh-me"}' ;;
      broken.example) echo "keychain locked" >&2; exit 3 ;;
      slow.example) sleep 5 ;;
      *) echo "credentials not found in native keychain"; exit 1 ;;
    esac ;;
  store) printf '%s' "$input" > "$HELPER_STATE/stored" ;;
  erase) echo "$input" >> "$HELPER_STATE/erased" ;;
esac
`,
  );
  await chmod(join(bin, 'docker-credential-test'), 0o755);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function opts(env: Record<string, string> = {}, extra: Partial<CredentialOptions> = {}): CredentialOptions {
  return { home, env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, HELPER_STATE: helperState, ...env }, ...extra };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function writeJson(path: string, doc: unknown): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, JSON.stringify(doc));
}

const dockerConfig = (): string => join(home, '.docker', 'config.json');
const runtimeAuth = (): string => join(run, 'containers', 'auth.json');

describe('credential lookup', () => {
  it('lists files in podman/docker order', () => {
    expect(authFiles(opts({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: run, DOCKER_CONFIG: '/dc' })).map((f) => f.path)).toEqual([
      '/a.json',
      runtimeAuth(),
      join(home, '.config', 'containers', 'auth.json'),
      '/dc/config.json',
    ]);
  });

  it('normalises keys', () => {
    expect(registryOfKey('https://index.docker.io/v1/')).toBe('docker.io');
    expect(registryOfKey('registry-1.docker.io')).toBe('docker.io');
    expect(registryOfKey('http://localhost:5000')).toBe('localhost:5000');
    expect(registryOfKey('quay.io/ns/repo')).toBeUndefined();
  });

  it('takes the first file that knows the registry', async () => {
    const custom = join(dir, 'custom.json');
    await writeJson(custom, { auths: { 'reg.example': { auth: b64('a:1') } } });
    await writeJson(runtimeAuth(), { auths: { 'reg.example': { auth: b64('b:2') }, 'only-run.example': { username: 'u', password: 'p' } } });
    await writeJson(dockerConfig(), { auths: { 'reg.example': { auth: b64('c:3:with:colons') }, 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } });

    const all = opts({ REGISTRY_AUTH_FILE: custom, XDG_RUNTIME_DIR: run });
    expect(await findCredentials('reg.example', all)).toEqual({ credential: { username: 'a', password: '1' }, source: custom });
    expect((await findCredentials('reg.example', opts({ XDG_RUNTIME_DIR: run })))?.credential).toEqual({ username: 'b', password: '2' });
    expect((await findCredentials('reg.example', opts()))?.credential).toEqual({ username: 'c', password: '3:with:colons' });
    expect((await findCredentials('only-run.example', all))?.credential).toEqual({ username: 'u', password: 'p' });
    expect((await findCredentials('docker.io', all))?.credential).toEqual({ username: 'hub', password: 'pw' });
    expect(await findCredentials('unknown.example', all)).toBeUndefined();
  });

  it('reads identity tokens', async () => {
    await writeJson(dockerConfig(), { auths: { 'id.example': { auth: b64('me:'), identitytoken: 'rt' } } });
    expect((await findCredentials('id.example', opts()))?.credential).toEqual({ username: 'me', password: '', identityToken: 'rt' });
  });

  it('refuses a malformed file with ECREDENTIALS naming it', async () => {
    await writeFile(join(dir, 'bad.json'), '{ nope');
    await expect(findCredentials('x', opts({ REGISTRY_AUTH_FILE: join(dir, 'bad.json') }))).rejects.toMatchObject({
      code: 'ECREDENTIALS',
      context: { path: join(dir, 'bad.json') },
    });
  });

  it('asks credHelpers, then credsStore, over the helper protocol', async () => {
    await writeJson(dockerConfig(), { credHelpers: { 'helper.example': 'test' }, credsStore: 'test', auths: { 'inline.example': { auth: b64('i:n') } } });
    expect(await findCredentials('helper.example', opts())).toEqual({ credential: { username: 'helperuser', password: 'helperpass' }, source: 'docker-credential-test' });
    // Docker Hub is asked under Docker's legacy key; "<token>" means an identity token.
    expect((await findCredentials('docker.io', opts()))?.credential).toEqual({ username: '', password: '', identityToken: 'refresh-me' });
    // Helper has nothing: the inline entry still counts; nothing at all means anonymous.
    expect((await findCredentials('inline.example', opts()))?.credential).toEqual({ username: 'i', password: 'n' });
    expect(await findCredentials('nobody.example', opts())).toBeUndefined();
    const calls = await readFile(join(helperState, 'calls'), 'utf8');
    expect(calls).toContain('get helper.example');
    expect(calls).toContain('get https://index.docker.io/v1/');
  });

  it('reports helper failures and timeouts as ECREDENTIALS', async () => {
    await expect(helperGet('test', 'broken.example', opts())).rejects.toMatchObject({ code: 'ECREDENTIALS', message: expect.stringMatching(/exit status 3: keychain locked/) });
    await expect(helperGet('test', 'slow.example', opts({}, { timeoutMs: 200 }))).rejects.toMatchObject({ code: 'ECREDENTIALS', message: expect.stringMatching(/timed out/) });
    await expect(helperGet('missing', 'x', opts())).rejects.toMatchObject({ code: 'ECREDENTIALS', message: expect.stringMatching(/program not found/) });
    await expect(helperGet('../evil', 'x', opts())).rejects.toMatchObject({ code: 'ECREDENTIALS' });
  });
});

describe('login and logout', () => {
  async function mode(p: string): Promise<number> {
    return (await stat(p)).mode & 0o777;
  }

  it('writes REGISTRY_AUTH_FILE atomically with mode 0600, keeping other keys', async () => {
    const file = join(dir, 'auth.json');
    await writeJson(file, { auths: { 'other.example': { auth: b64('o:p') }, 'http://reg.example': { auth: b64('old:old') } }, credHelpers: { 'z.example': 'z' }, custom: { keep: true } });
    await chmod(file, 0o644);
    const r = await login('reg.example', 'alice', 'pw', opts({ REGISTRY_AUTH_FILE: file, XDG_RUNTIME_DIR: run }));
    expect(r.where).toBe(file);
    const doc = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    expect(doc).toEqual({
      auths: { 'other.example': { auth: b64('o:p') }, 'reg.example': { auth: b64('alice:pw') } },
      credHelpers: { 'z.example': 'z' },
      custom: { keep: true },
    });
    expect(await mode(file)).toBe(0o600);
  });

  it('defaults to $XDG_RUNTIME_DIR/containers/auth.json, else ~/.docker/config.json', async () => {
    const r1 = await login('docker.io', 'hub', 'pw', opts({ XDG_RUNTIME_DIR: run }));
    expect(r1.where).toBe(runtimeAuth());
    expect(JSON.parse(await readFile(runtimeAuth(), 'utf8'))).toEqual({ auths: { 'docker.io': { auth: b64('hub:pw') } } });
    expect(await mode(runtimeAuth())).toBe(0o600);

    const r2 = await login('index.docker.io', 'hub', 'pw2', opts());
    expect(r2.where).toBe(dockerConfig());
    // Docker's own file gets Docker's own key for Docker Hub.
    expect(JSON.parse(await readFile(dockerConfig(), 'utf8'))).toEqual({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw2') } } });
    expect((await findCredentials('docker.io', opts()))?.credential).toEqual({ username: 'hub', password: 'pw2' });
  });

  it('stores through the helper that applies to the host', async () => {
    await writeJson(dockerConfig(), { credHelpers: { 'helper.example': 'test' } });
    const r = await login('helper.example', 'u', 'secret', opts({ XDG_RUNTIME_DIR: run }));
    expect(r.where).toBe('docker-credential-test');
    expect(JSON.parse(await readFile(join(helperState, 'stored'), 'utf8'))).toEqual({ ServerURL: 'helper.example', Username: 'u', Secret: 'secret' });
  });

  it('logout removes the host from every file and helper, and only that host', async () => {
    const custom = join(dir, 'custom.json');
    await writeJson(custom, { auths: { 'reg.example': { auth: b64('a:1') }, 'keep.example': { auth: b64('k:k') } } });
    await writeJson(runtimeAuth(), { auths: { 'https://reg.example/v1/': { auth: b64('b:2') } } });
    await writeJson(dockerConfig(), { credsStore: 'test', auths: { 'reg.example': {} } });
    const o = opts({ REGISTRY_AUTH_FILE: custom, XDG_RUNTIME_DIR: run });
    const r = await logout('reg.example', o);
    expect(r.removed).toEqual([custom, runtimeAuth(), 'docker-credential-test', dockerConfig()]);
    expect(JSON.parse(await readFile(custom, 'utf8'))).toEqual({ auths: { 'keep.example': { auth: b64('k:k') } } });
    expect(JSON.parse(await readFile(runtimeAuth(), 'utf8'))).toEqual({ auths: {} });
    expect(JSON.parse(await readFile(dockerConfig(), 'utf8'))).toEqual({ credsStore: 'test', auths: {} });
    expect(await readFile(join(helperState, 'erased'), 'utf8')).toBe('reg.example\n');
    expect(await findCredentials('reg.example', o)).toBeUndefined();
    // The fake helper's erase always succeeds; the files have nothing left.
    expect((await logout('reg.example', o)).removed).toEqual(['docker-credential-test']);
  });
});
