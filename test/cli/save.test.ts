/**
 * `s2n-oci save` end to end: an image loaded into the store is saved as a
 * docker-archive and an oci-archive; skopeo reads both, and loading them into
 * another store gives the same manifest digest.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ociArchive } from '../helpers/archives.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { smallImage } from '../helpers/images.js';

const run = promisify(execFile);

async function seed(root: string, name = 'localhost/app:1'): Promise<string> {
  const img = await smallImage({ marker: 'save' });
  const p = join(tempDir(), 'in.tar');
  writeFileSync(p, ociArchive([{ image: img, annotations: { 'io.containerd.image.name': name } }]));
  const r = await runCli(['load', '-i', p], { root });
  expect(r.code, r.stderr).toBe(0);
  return img.manifestDigest;
}

async function digestIn(root: string, name: string): Promise<string> {
  const r = await runCli(['inspect', name], { root });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ Digest: string }>)[0]!.Digest;
}

describe('save', () => {
  for (const format of ['docker-archive', 'oci-archive'] as const) {
    it(`${format}: skopeo reads it and load elsewhere keeps the digest`, async () => {
      const a = join(tempDir(), 'a');
      const digest = await seed(a);
      const out = join(tempDir(), 'out.tar');
      const s = await runCli(['save', '--format', format, '-o', out, 'localhost/app:1'], { root: a });
      expect(s.code, s.stderr).toBe(0);
      expect(s.stdout).toContain(digest);

      const { stdout } = await run('skopeo', ['inspect', `${format}:${out}`]);
      expect((JSON.parse(stdout) as { Layers: string[] }).Layers).toHaveLength(2);
      const layout = join(tempDir(), 'layout');
      await run('skopeo', ['copy', `${format}:${out}`, `oci:${layout}:x`]);
      expect(existsSync(join(layout, 'index.json'))).toBe(true);

      const b = join(tempDir(), 'b');
      const l = await runCli(['load', '-i', out], { root: b });
      expect(l.code, l.stderr).toBe(0);
      expect(l.stdout).toContain('Loaded image: localhost/app:1');
      expect(await digestIn(b, 'localhost/app:1')).toBe(digest);
    });
  }

  it('oci-archive: skopeo copies it to an OCI layout with the same manifest digest', async () => {
    const a = join(tempDir(), 'a');
    const digest = await seed(a);
    const out = join(tempDir(), 'out.tar');
    expect((await runCli(['save', '--format', 'oci-archive', '-o', out, 'localhost/app:1'], { root: a })).code).toBe(0);
    const layout = join(tempDir(), 'layout');
    await run('skopeo', ['copy', '--preserve-digests', `oci-archive:${out}`, `oci:${layout}`]);
    expect(readdirSync(join(layout, 'blobs', 'sha256'))).toContain(digest.slice('sha256:'.length));
  });

  it('several images in one archive, and errors are one line with exit 125', async () => {
    const a = join(tempDir(), 'a');
    await seed(a, 'localhost/one:1');
    await seed(a, 'localhost/two:2');
    const out = join(tempDir(), 'two.tar');
    const s = await runCli(['save', '-o', out, 'localhost/one:1', 'localhost/two:2'], { root: a });
    expect(s.code, s.stderr).toBe(0);
    const l = await runCli(['load', '-i', out], { root: join(tempDir(), 'b') });
    expect(l.stdout).toContain('localhost/one:1');
    expect(l.stdout).toContain('localhost/two:2');

    const missing = await runCli(['save', '-o', join(tempDir(), 'x.tar'), 'localhost/nope:1'], { root: a });
    expect(missing.code).toBe(125);
    expect(missing.stderr).toMatch(/not in the store/);
    const badDir = await runCli(['save', '-o', '/nonexistent/dir/x.tar', 'localhost/one:1'], { root: a });
    expect(badDir.code).toBe(125);
    expect(badDir.stderr.trim().split('\n')[0]).toMatch(/write archive/);
  });
});
