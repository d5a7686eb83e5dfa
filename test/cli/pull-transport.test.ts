import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'undici';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliSandbox, runCli, tempDir } from '../helpers/cli.js';
import { smallImage } from '../helpers/images.js';
import { pushImage } from '../helpers/push.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const run = promisify(execFile);

describe('registry mirrors from registries.json', () => {
  let mirror: TestRegistry;
  beforeAll(async () => {
    mirror = await startRegistry();
  });
  afterAll(async () => mirror?.stop());

  it('pulls a Docker Hub short name through a configured mirror, with no route to Docker Hub', async () => {
    const img = await smallImage({ marker: 'mirrored-alpine' });
    await pushImage(mirror, 'library/alpine', img, { tags: ['3.19'] });
    const sb = cliSandbox();
    const confDir = join(sb.env.XDG_CONFIG_HOME ?? '', 's2n-oci');
    mkdirSync(confDir, { recursive: true });
    writeFileSync(join(confDir, 'registries.json'), JSON.stringify({ registries: { 'docker.io': { mirrors: [mirror.host] } } }));

    const r = await runCli(['pull', 'alpine:3.19']);
    expect(r.stderr).not.toContain('Error');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(img.manifestDigest);
    const ls = JSON.parse((await runCli(['images', '--json'])).stdout) as Array<{ name: string }>;
    // Stored under the name the user asked for, not the mirror's.
    expect(ls.map((x) => x.name)).toEqual(['docker.io/library/alpine:3.19']);
  });

  it('says the config file is malformed, naming it', async () => {
    const sb = cliSandbox();
    const confDir = join(sb.env.XDG_CONFIG_HOME ?? '', 's2n-oci');
    mkdirSync(confDir, { recursive: true });
    writeFileSync(join(confDir, 'registries.json'), '{"registries": {"docker.io": {"mirrors": "not-a-list"}}}');
    const r = await runCli(['pull', 'alpine:3.19']);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(join(confDir, 'registries.json'));
  });
});

describe('TLS registry with a private CA in certs.d', () => {
  let reg: TestRegistry;
  let pki: string;
  beforeAll(async () => {
    pki = tempDir('s2n-pki-');
    const o = (args: string[]): Promise<unknown> => run('openssl', args, { cwd: pki });
    await o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=s2n test CA']);
    await o(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
    writeFileSync(join(pki, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    await o(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf']);
    reg = await startRegistry({
      configure: (cfg) => {
        const http = cfg.http as Record<string, unknown>;
        http.tls = { certificate: join(pki, 'server.crt'), key: join(pki, 'server.key') };
      },
    });
  });
  afterAll(async () => reg?.stop());

  it('pulls once the CA is in the user certs.d, and fails with a TLS hint without it', async () => {
    const img = await smallImage({ marker: 'tls' });
    const ca = readFileSync(join(pki, 'ca.crt'));
    await pushImage(`https://${reg.host}`, 'secure/app', img, { tags: ['1'], dispatcher: new Agent({ connect: { ca } }) });

    const sb = cliSandbox();
    const certs = join(sb.env.XDG_CONFIG_HOME ?? '', 'containers', 'certs.d', reg.host);
    mkdirSync(certs, { recursive: true });
    copyFileSync(join(pki, 'ca.crt'), join(certs, 'ca.crt'));
    const ok = await runCli(['pull', `${reg.host}/secure/app:1`]);
    expect(ok.stderr).not.toContain('Error');
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toBe(img.manifestDigest);

    // An empty certs.d entry marks the loopback registry as TLS, but nothing vouches for its certificate.
    const other = tempDir('s2n-noca-');
    mkdirSync(join(other, 'containers', 'certs.d', reg.host), { recursive: true });
    const bad = await runCli(['pull', `${reg.host}/secure/app:1`], { env: { XDG_CONFIG_HOME: other }, root: join(other, 'root') });
    expect(bad.code).toBe(125);
    expect(bad.stderr).toMatch(/certificate/i);
    expect(bad.stderr).toMatch(/^hint: .*certs\.d/m);
  });
});
