import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliSandbox, runCli } from '../helpers/cli.js';
import { buildImage, buildIndex, file, smallImage } from '../helpers/images.js';
import { pushImage } from '../helpers/push.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { blobFiles } from '../helpers/store-files.js';

const run = promisify(execFile);

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
});


describe('s2n-oci pull (anonymous registry)', () => {
  it('pulls an OCI image: digest on stdout, every blob stored and verified, readable by skopeo', async () => {
    const img = await smallImage({ format: 'oci', marker: 'oci-pull' });
    await pushImage(reg, 'test/oci', img, { tags: ['1.0'] });
    const ref = `${reg.host}/test/oci:1.0`;

    const r = await runCli(['pull', ref]);
    expect(r.stderr).toContain('pulled');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(img.manifestDigest);

    const root = cliSandbox().root;
    const stored = blobFiles(root);
    for (const d of [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]) {
      expect(stored).toContain(d.slice('sha256:'.length));
    }
    expect(readdirSync(join(root, 'ingest'))).toEqual([]);
    expect(JSON.parse(readFileSync(join(root, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });

    // Interop: skopeo reads the store as an OCI layout, by the same name.
    const { stdout } = await run('skopeo', ['inspect', '--raw', `oci:${root}:${ref}`]);
    expect(stdout).toBe(img.manifestBytes.toString('utf8'));
    const cfg = await run('skopeo', ['inspect', '--config', `oci:${root}:${ref}`]);
    expect(JSON.parse(cfg.stdout)).toMatchObject({ rootfs: { diff_ids: img.layers.map((l) => l.diffId) } });
  });

  it('pulls a Docker schema2 image and lists and inspects it', async () => {
    const img = await smallImage({ format: 'docker', marker: 'docker-pull' });
    await pushImage(reg, 'test/docker', img, { tags: ['latest'] });
    const r = await runCli(['pull', '--json', `${reg.host}/test/docker`]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { name: string; digest: string; mediaType: string };
    expect(out).toMatchObject({ name: `${reg.host}/test/docker:latest`, digest: img.manifestDigest, mediaType: 'application/vnd.docker.distribution.manifest.v2+json' });
    // --json progress is NDJSON on stderr.
    const events = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(events.map((e) => e.type)).toContain('blob-done');

    const ls = await runCli(['images', '--json']);
    expect(ls.code).toBe(0);
    const rows = JSON.parse(ls.stdout) as Array<{ name: string; digest: string; id: string; tag: string }>;
    expect(rows).toEqual([expect.objectContaining({ name: `${reg.host}/test/docker:latest`, digest: img.manifestDigest, id: img.configDigest, tag: 'latest' })]);

    const table = await runCli(['images']);
    expect(table.stdout).toMatch(/REPOSITORY\s+TAG\s+DIGEST/);
    expect(table.stdout).toContain(`${reg.host}/test/docker`);

    const insp = await runCli(['inspect', `${reg.host}/test/docker`]);
    expect(insp.code).toBe(0);
    const [doc] = JSON.parse(insp.stdout) as Array<{ Digest: string; DiffIds: string[]; Platform: { os: string } }>;
    expect(doc?.Digest).toBe(img.manifestDigest);
    expect(doc?.DiffIds).toEqual(img.layers.map((l) => l.diffId));
    // By short id (the config digest, as docker shows it).
    const byId = await runCli(['inspect', img.configDigest.slice(7, 19)]);
    expect(byId.code).toBe(0);
  });

  it('pulls by digest, and by tag@digest where the digest wins', async () => {
    const a = await smallImage({ marker: 'by-digest-a' });
    const b = await smallImage({ marker: 'by-digest-b' });
    await pushImage(reg, 'test/bydigest', a, { tags: ['a'] });
    await pushImage(reg, 'test/bydigest', b, { tags: ['b'] });
    const r1 = await runCli(['pull', `${reg.host}/test/bydigest@${a.manifestDigest}`]);
    expect(r1.code).toBe(0);
    expect(r1.stdout.trim()).toBe(a.manifestDigest);
    const r2 = await runCli(['pull', `${reg.host}/test/bydigest:b@${a.manifestDigest}`]);
    expect(r2.code).toBe(0);
    expect(r2.stdout.trim()).toBe(a.manifestDigest);
  });

  it('chooses the platform from a multi-arch index, and lists the choices when none matches', async () => {
    const amd = await smallImage({ platform: { os: 'linux', architecture: 'amd64' }, marker: 'amd64' });
    const arm = await smallImage({ platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, marker: 'arm64' });
    for (const format of ['oci', 'docker'] as const) {
      const idx = buildIndex([amd, arm], format);
      await pushImage(reg, `test/multi-${format}`, idx, { tags: ['latest'] });
      const ref = `${reg.host}/test/multi-${format}`;
      const r = await runCli(['pull', '--platform', 'linux/arm64', ref]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(arm.manifestDigest);
      const r2 = await runCli(['pull', '--platform', 'linux/amd64', ref]);
      expect(r2.stdout.trim()).toBe(amd.manifestDigest);
      const insp = JSON.parse((await runCli(['inspect', ref])).stdout) as Array<{ IndexDigest: string }>;
      expect(insp[0]?.IndexDigest).toBe(idx.indexDigest);

      const bad = await runCli(['pull', '--platform', 'linux/s390x', ref]);
      expect(bad.code).toBe(125);
      expect(bad.stderr).toContain('no manifest for platform linux/s390x');
      expect(bad.stderr).toMatch(/available: .*linux\/amd64.*linux\/arm64/);
    }
  });

  it('explains a missing tag, a missing repository, a malformed reference and a dead registry', async () => {
    const img = await smallImage({ marker: 'errors' });
    await pushImage(reg, 'test/errors', img, { tags: ['there'] });

    const noTag = await runCli(['pull', `${reg.host}/test/errors:missing`]);
    expect(noTag.code).toBe(125);
    expect(noTag.stderr).toMatch(/^Error: .*missing.*\n/m);
    expect(noTag.stderr).toMatch(/tag|manifest unknown/i);
    expect(noTag.stderr).toMatch(/^hint: /m);

    const noRepo = await runCli(['pull', `${reg.host}/test/nothing-here:1`]);
    expect(noRepo.code).toBe(125);
    expect(noRepo.stderr).toContain('test/nothing-here');
    expect(noRepo.stderr).toMatch(/^hint: check the repository name/m);

    const bad = await runCli(['pull', 'Not A Ref']);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain('invalid reference');

    const dead = await runCli(['pull', '127.0.0.1:1/x:y']);
    expect(dead.code).toBe(125);
    expect(dead.stderr).toMatch(/connect|refused/i);
    expect(dead.stderr).not.toContain('    at '); // no stack without --debug
    const debug = await runCli(['--debug', 'pull', '127.0.0.1:1/x:y']);
    expect(debug.stderr).toContain('    at ');
    // Nothing was stored by the failures.
    expect(blobFiles(cliSandbox().root)).toEqual([]);
  });

  it('refuses an artifact that is not a container image', async () => {
    const art = await buildImage({
      layers: [[file('chart.yaml', 'x')]],
      mutateManifest: (m) => {
        (m as { config: { mediaType: string } }).config.mediaType = 'application/vnd.cncf.helm.config.v1+json';
      },
    });
    await pushImage(reg, 'test/artifact', art, { tags: ['1'] });
    const r = await runCli(['pull', `${reg.host}/test/artifact:1`]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('not a container image');
  });
});
