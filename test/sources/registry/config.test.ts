import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadRegistriesConfig, parseMirror, registriesConfigPath, registryEntry } from '../../../src/sources/registry/config.js';
import { ipInCidr, isLoopbackHost, splitHostPort } from '../../../src/sources/registry/hosts.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 's2n-regconf-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('hosts', () => {
  it('splits host and port', () => {
    expect(splitHostPort('localhost:5000')).toEqual({ hostname: 'localhost', port: 5000 });
    expect(splitHostPort('[::1]:5000')).toEqual({ hostname: '::1', port: 5000 });
    expect(splitHostPort('::1')).toEqual({ hostname: '::1', port: undefined });
    expect(splitHostPort('Quay.IO')).toEqual({ hostname: 'quay.io', port: undefined });
  });
  it('knows loopback', () => {
    expect(['localhost', 'a.localhost', '127.0.0.1', '127.9.9.9', '::1', '[::1]'].every(isLoopbackHost)).toBe(true);
    expect(['10.0.0.1', 'example.com', '::2', 'localhost.example.com'].some(isLoopbackHost)).toBe(false);
  });
  it('matches CIDRs', () => {
    expect(ipInCidr('10.1.2.3', '10.0.0.0/8')).toBe(true);
    expect(ipInCidr('11.1.2.3', '10.0.0.0/8')).toBe(false);
    expect(ipInCidr('fd00::1', 'fd00::/8')).toBe(true);
    expect(ipInCidr('example.com', '10.0.0.0/8')).toBe(false);
  });
});

describe('registries config', () => {
  it('finds its file from the environment', () => {
    expect(registriesConfigPath({ S2N_OCI_REGISTRIES_CONF: '/x.json' }, '/home/u')).toBe('/x.json');
    expect(registriesConfigPath({ XDG_CONFIG_HOME: '/cfg' }, '/home/u')).toBe('/cfg/s2n-oci/registries.json');
    expect(registriesConfigPath({}, '/home/u')).toBe('/home/u/.config/s2n-oci/registries.json');
  });

  it('is empty when no file exists', async () => {
    const cfg = await loadRegistriesConfig({ file: join(dir, 'none.json'), daemonJson: join(dir, 'none2.json') });
    expect(cfg.registries).toEqual({});
    expect(registryEntry(cfg, 'quay.io')).toEqual({ mirrors: [], insecure: false, blocked: false });
  });

  it('reads ours and merges daemon.json', async () => {
    const file = join(dir, 'registries.json');
    const daemon = join(dir, 'daemon.json');
    await writeFile(
      file,
      JSON.stringify({ registries: { 'index.docker.io': { mirrors: ['mirror.local:5000', 'https://m2/prefix'] }, 'build.lan:5000': { insecure: true }, 'evil.io': { blocked: true } } }),
    );
    await writeFile(daemon, JSON.stringify({ 'registry-mirrors': ['https://mirror.gcr.io', 'https://m2/prefix'], 'insecure-registries': ['10.0.0.0/8', 'old.lan:5000'], 'log-level': 'warn' }));
    const cfg = await loadRegistriesConfig({ file, daemonJson: daemon });
    const hub = registryEntry(cfg, 'docker.io');
    expect(hub.mirrors.map((m) => [m.host, m.pathPrefix, m.scheme])).toEqual([
      ['mirror.local:5000', '', undefined],
      ['m2', 'prefix', 'https'],
      ['mirror.gcr.io', '', 'https'],
    ]);
    expect(registryEntry(cfg, 'build.lan:5000').insecure).toBe(true);
    expect(registryEntry(cfg, 'old.lan:5000').insecure).toBe(true);
    expect(registryEntry(cfg, '10.2.3.4:5000').insecure).toBe(true);
    expect(registryEntry(cfg, '11.2.3.4:5000').insecure).toBe(false);
    expect(registryEntry(cfg, 'evil.io').blocked).toBe(true);
    expect(cfg.sources).toEqual([file, daemon]);
  });

  it('refuses malformed files with EUSAGE naming the file', async () => {
    const file = join(dir, 'registries.json');
    const cases = ['{not json', '[]', '{"registry": {}}', '{"registries": {"a.io": {"mirror": []}}}', '{"registries": {"a.io": {"insecure": "yes"}}}', '{"registries": {"a.io": {"mirrors": ["ftp://x"]}}}'];
    for (const text of cases) {
      await writeFile(file, text);
      await expect(loadRegistriesConfig({ file, daemonJson: join(dir, 'none') })).rejects.toMatchObject({ code: 'EUSAGE', context: { path: file } });
    }
  });

  it('parses mirror locations', () => {
    expect(parseMirror('http://m3:5000/a/b/')).toMatchObject({ host: 'm3:5000', pathPrefix: 'a/b', scheme: 'http' });
    expect(parseMirror('https://mirror.example/v2/')).toMatchObject({ host: 'mirror.example', pathPrefix: '', scheme: 'https' });
  });
});
