import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliSandbox, runCli } from '../helpers/cli.js';
import { smallImage, type TestImage } from '../helpers/images.js';
import { pushImage } from '../helpers/push.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const basicAuth = (user: string, pass: string): string => Buffer.from(`${user}:${pass}`).toString('base64');

describe('basic auth registry', () => {
  let reg: TestRegistry;
  let img: TestImage;
  let ref: string;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'basic', users: { tester: 'secret' } });
    img = await smallImage({ marker: 'basic' });
    await pushImage(reg, 'private/app', img, { auth: { username: 'tester', password: 'secret' }, tags: ['1'] });
    ref = `${reg.host}/private/app:1`;
  });
  afterAll(async () => reg?.stop());

  it('refuses without credentials with a hint to log in, then login/pull/logout work', async () => {
    const anon = await runCli(['pull', ref]);
    expect(anon.code).toBe(125);
    expect(anon.stderr).toMatch(/wants a username and password|unauthorized/i);
    expect(anon.stderr).toContain(`s2n-oci login ${reg.host}`);

    const wrong = await runCli(['login', '-u', 'tester', '--password-stdin', reg.host], { input: 'nope\n' });
    expect(wrong.code).toBe(125);
    expect(wrong.stderr).toMatch(/credentials|unauthorized/i);

    const ok = await runCli(['login', '-u', 'tester', '--password-stdin', reg.host], { input: 'secret\n' });
    expect(ok.stderr).toBe(`credentials stored in ${join(cliSandbox().env.XDG_RUNTIME_DIR ?? '', 'containers', 'auth.json')}\n`);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toBe('Login Succeeded!');
    const authFile = join(cliSandbox().env.XDG_RUNTIME_DIR ?? '', 'containers', 'auth.json');
    expect(statSync(authFile).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(readFileSync(authFile, 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(doc.auths[reg.host]?.auth).toBe(basicAuth('tester', 'secret'));

    const pulled = await runCli(['pull', ref]);
    expect(pulled.code).toBe(0);
    expect(pulled.stdout.trim()).toBe(img.manifestDigest);

    const out = await runCli(['logout', reg.host]);
    expect(out.code).toBe(0);
    expect((await runCli(['pull', ref])).code).toBe(125);
    expect((await runCli(['logout', reg.host])).code).toBe(125);
  });

  it('reads REGISTRY_AUTH_FILE and ~/.docker/config.json', async () => {
    const sb = cliSandbox();
    const file = join(sb.dir, 'my-auth.json');
    writeFileSync(file, JSON.stringify({ auths: { [reg.host]: { auth: basicAuth('tester', 'secret') } } }));
    const viaEnv = await runCli(['pull', ref], { env: { REGISTRY_AUTH_FILE: file } });
    expect(viaEnv.code).toBe(0);

    mkdirSync(join(sb.home, '.docker'), { recursive: true });
    writeFileSync(join(sb.home, '.docker', 'config.json'), JSON.stringify({ auths: { [reg.host]: { username: 'tester', password: 'secret' } } }));
    const viaDocker = await runCli(['pull', ref]);
    expect(viaDocker.code).toBe(0);
    expect(viaDocker.stdout.trim()).toBe(img.manifestDigest);
  });

  it('asks a docker-credential helper named in credHelpers', async () => {
    const sb = cliSandbox();
    const bin = join(sb.dir, 'bin');
    mkdirSync(bin);
    const log = join(sb.dir, 'helper.log');
    // A real helper program speaking the protocol: server URL on stdin, JSON on stdout.
    writeFileSync(
      join(bin, 'docker-credential-s2ntest'),
      `#!/bin/sh\nread server\necho "$1 $server" >> ${log}\nprintf '{"ServerURL":"%s","Username":"tester","Secret":"secret"}' "$server"\n`,
    );
    chmodSync(join(bin, 'docker-credential-s2ntest'), 0o755);
    mkdirSync(join(sb.home, '.docker'), { recursive: true });
    writeFileSync(join(sb.home, '.docker', 'config.json'), JSON.stringify({ credHelpers: { [reg.host]: 's2ntest' } }));
    const r = await runCli(['pull', ref], { env: { PATH: `${bin}:${sb.env.PATH ?? ''}` } });
    expect(r.stderr).not.toContain('Error');
    expect(r.code).toBe(0);
    expect(readFileSync(log, 'utf8')).toContain(`get ${reg.host}`);
  });
});

describe('token auth registry', () => {
  let reg: TestRegistry;
  let pub: TestImage;
  let priv: TestImage;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token', users: { tester: 'secret' } });
    pub = await smallImage({ marker: 'token-public' });
    priv = await smallImage({ marker: 'token-private' });
    const auth = { username: 'tester', password: 'secret' };
    await pushImage(reg, 'public/app', pub, { auth, tags: ['1'] });
    await pushImage(reg, 'team/app', priv, { auth, tags: ['1'] });
  });
  afterAll(async () => reg?.stop());

  it('pulls a public repository with an anonymous bearer token, one token for the whole pull', async () => {
    const ts = reg.tokenServer;
    if (!ts) throw new Error('token server missing');
    ts.requests.length = 0;
    const r = await runCli(['pull', `${reg.host}/public/app:1`]);
    expect(r.stderr).not.toContain('Error');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pub.manifestDigest);
    // Manifest, config and two layers were fetched with one cached token.
    expect(ts.requests.filter((q) => q.status === 200)).toHaveLength(1);
    expect(ts.requests[0]).toMatchObject({ credentials: false, scopes: ['repository:public/app:pull'] });
  });

  it('needs credentials for a private repository, and uses them after login', async () => {
    const ts = reg.tokenServer;
    if (!ts) throw new Error('token server missing');
    const anon = await runCli(['pull', `${reg.host}/team/app:1`]);
    expect(anon.code).toBe(125);
    expect(anon.stderr).toContain(`s2n-oci login ${reg.host}`);

    const login = await runCli(['login', '-u', 'tester', '-p', 'secret', reg.host]);
    expect(login.code).toBe(0);
    ts.requests.length = 0;
    const r = await runCli(['pull', `${reg.host}/team/app:1`]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(priv.manifestDigest);
    expect(ts.requests.some((q) => q.credentials && q.user === 'tester')).toBe(true);
  });
});
