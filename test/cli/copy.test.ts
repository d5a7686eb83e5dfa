/**
 * `s2n-oci copy` end to end: load → copy to the test registry (no auth, Basic,
 * token) → pull in another store with the same digest; blobs the registry has
 * are skipped on a second push (the proxy log shows HEAD 200 and no upload);
 * copies between archives, layouts and the store; bad locations.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ociArchive } from '../helpers/archives.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { smallImage, type TestImage } from '../helpers/images.js';
import { startRegistry, type RegistryAuth, type TestRegistry } from '../helpers/registry.js';
import { registryBehindProxy } from '../helpers/fixtures.js';

const run = promisify(execFile);

async function seed(root: string, name: string, marker = 'copy'): Promise<TestImage> {
  const img = await smallImage({ marker });
  const p = join(tempDir(), 'in.tar');
  writeFileSync(p, ociArchive([{ image: img, annotations: { 'io.containerd.image.name': name } }]));
  const r = await runCli(['load', '-i', p], { root });
  expect(r.code, r.stderr).toBe(0);
  return img;
}

async function digestIn(root: string, name: string): Promise<string> {
  const r = await runCli(['inspect', name], { root });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ Digest: string }>)[0]!.Digest;
}

for (const auth of ['none', 'basic', 'token'] as RegistryAuth[]) {
  describe(`copy to a registry (${auth} auth)`, () => {
    let reg: TestRegistry;
    beforeAll(async () => {
      reg = await startRegistry({ auth });
    }, 30_000);
    afterAll(async () => reg?.stop());

    it('load → copy → pull elsewhere keeps the manifest digest', async () => {
      if (reg.credentials) {
        const l = await runCli(['login', '-u', reg.credentials.username, '-p', reg.credentials.password, reg.host]);
        expect(l.code, l.stderr).toBe(0);
      }
      const a = join(tempDir(), 'a');
      const img = await seed(a, 'localhost/app:1', `reg-${auth}`);
      const dst = `${reg.host}/pushed/app:v1`;
      const c = await runCli(['copy', 'localhost/app:1', `docker://${dst}`], { root: a });
      expect(c.code, c.stderr).toBe(0);
      expect(c.stdout).toContain(img.manifestDigest);
      const b = join(tempDir(), 'b');
      const p = await runCli(['pull', dst], { root: b });
      expect(p.code, p.stderr).toBe(0);
      expect(await digestIn(b, dst)).toBe(img.manifestDigest);

      // Registry to registry within the registry: blobs mounted, same digest.
      const m = await runCli(['copy', `docker://${dst}`, `docker://${reg.host}/mounted/app:v2`], { root: b });
      expect(m.code, m.stderr).toBe(0);
      expect(m.stdout).toContain(img.manifestDigest);
    });
  });
}

describe('copy', () => {
  const env = registryBehindProxy();

  it('skips blobs the registry already has on a second push', async () => {
    const a = join(tempDir(), 'a');
    const img = await seed(a, 'localhost/again:1', 'again');
    const dst = `docker://${env.proxy.host}/again/app:1`;
    expect((await runCli(['copy', 'localhost/again:1', dst], { root: a })).code).toBe(0);
    const before = env.proxy.log.length;
    const r = await runCli(['copy', 'localhost/again:1', dst], { root: a });
    expect(r.code, r.stderr).toBe(0);
    const second = env.proxy.log.slice(before);
    const heads = second.filter((e) => e.method === 'HEAD' && e.path.includes('/blobs/'));
    expect(heads.length).toBe(img.layers.length + 1);
    expect(heads.every((e) => e.status === 200)).toBe(true);
    expect(second.filter((e) => e.path.includes('/blobs/uploads/'))).toEqual([]);

    // To another repository of the same registry: mounted, not uploaded.
    const mark = env.proxy.log.length;
    const m = await runCli(['copy', dst, `docker://${env.proxy.host}/mounted/app:1`], { root: a });
    expect(m.code, m.stderr).toBe(0);
    const third = env.proxy.log.slice(mark);
    const mounts = third.filter((e) => e.method === 'POST' && e.url.includes('mount='));
    expect(mounts.map((e) => e.status)).toEqual(Array(img.layers.length + 1).fill(201));
    expect(third.filter((e) => e.method === 'PUT' && e.path.includes('/blobs/'))).toEqual([]);
  });

  it('between archives, layouts and the store, read by skopeo, digests kept', async () => {
    const a = join(tempDir(), 'a');
    const img = await seed(a, 'localhost/arc:1', 'arc');
    const t = tempDir();
    const steps: Array<[string, string]> = [
      ['store:localhost/arc:1', `oci-archive:${join(t, 'one.tar')}`],
      [`oci-archive:${join(t, 'one.tar')}`, `docker-archive:${join(t, 'two.tar')}:localhost/arc:2`],
      [`docker-archive:${join(t, 'two.tar')}`, `oci:${join(t, 'layout')}:latest`],
      [`oci:${join(t, 'layout')}:latest`, 'localhost/arc:3'],
    ];
    for (const [src, dst] of steps) {
      const r = await runCli(['copy', src, dst], { root: a });
      expect(r.code, `${src} → ${dst}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(img.manifestDigest);
    }
    expect(await digestIn(a, 'localhost/arc:3')).toBe(img.manifestDigest);
    await run('skopeo', ['inspect', `docker-archive:${join(t, 'two.tar')}`]);
    const { stdout } = await run('tar', ['-xOf', join(t, 'two.tar'), 'manifest.json']);
    expect((JSON.parse(stdout) as Array<{ RepoTags: string[] }>)[0]!.RepoTags).toEqual(['localhost/arc:2']);
    await run('skopeo', ['inspect', `oci:${join(t, 'layout')}:latest`]);
  });

  it('a bad destination is one line with a hint and exit 125', async () => {
    for (const dst of ['ftp://x/y', 'docker-archive:', 'dir:/tmp/x', 'docker://UPPER/Case']) {
      const r = await runCli(['copy', 'localhost/whatever:1', dst]);
      expect(r.code, dst).toBe(125);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0], dst).toMatch(/image location/);
      expect(r.stderr).toMatch(/docker:\/\/REF/);
    }
    const missingDir = await runCli(['copy', 'localhost/whatever:1', 'oci-archive:/nonexistent/dir/x.tar']);
    expect(missingDir.code).toBe(125);
  });
});
