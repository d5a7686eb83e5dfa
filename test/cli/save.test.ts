/**
 * `s2n-oci save` end to end: an image loaded into the store is saved as a
 * docker-archive and an oci-archive; skopeo reads both, and loading them into
 * another store gives the same manifest digest.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ociArchive } from '../helpers/archives.js';
import { CLI_PATH, cliSandbox, runCli, spawnCli, tempDir } from '../helpers/cli.js';
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

  for (const args of [[], ['-o', '-']]) {
    it(`${args.length ? '-o -' : 'no -o'}: the archive goes to stdout, alone, and loads from stdin with the same digest`, async () => {
      const a = join(tempDir(), 'a');
      const digest = await seed(a);
      const child = spawnCli(['save', ...args, 'localhost/app:1'], { root: a, input: '' });
      const out: Buffer[] = [];
      let stderr = '';
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.setEncoding('utf8').on('data', (t: string) => (stderr += t));
      const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
      expect(code, stderr).toBe(0);
      const tarBytes = Buffer.concat(out);
      // Nothing but the tar: it starts with the first entry's header and ends with the end marker.
      expect(tarBytes.subarray(0, 10).toString('latin1')).toBe('oci-layout');
      expect(tarBytes.length % 512).toBe(0);
      expect(tarBytes.subarray(-1024).every((x) => x === 0)).toBe(true);
      expect(stderr).toContain(`Saved image: localhost/app:1 ${digest}`);

      const file = join(tempDir(), 'stdout.tar');
      writeFileSync(file, tarBytes);
      const { stdout } = await run('skopeo', ['inspect', `docker-archive:${file}`]);
      expect((JSON.parse(stdout) as { Layers: string[] }).Layers).toHaveLength(2);

      const b = join(tempDir(), 'b');
      const l = await runCli(['load', '-i', '-'], { root: b, input: readFileSync(file) });
      expect(l.code, l.stderr).toBe(0);
      expect(l.stdout).toContain('Loaded image: localhost/app:1');
      expect(await digestIn(b, 'localhost/app:1')).toBe(digest);
    });
  }

  it('refuses to write the archive to a terminal, and --json without -o', async () => {
    const a = join(tempDir(), 'a');
    await seed(a);
    const sb = cliSandbox();
    for (const args of ['', '-o -']) {
      // script(1) gives the CLI a pseudo-terminal as stdout.
      const r = await run('script', ['-qec', `${process.execPath} ${CLI_PATH} save ${args} localhost/app:1`, '/dev/null'], {
        env: { ...sb.env, S2N_OCI_ROOT: a },
        encoding: 'latin1',
      }).then(
        (x) => ({ code: 0, out: x.stdout }),
        (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
      );
      expect(r.code).toBe(125);
      expect(r.out).toMatch(/cowardly refusing to write the archive to a terminal/);
      expect(r.out).toMatch(/hint: use -o FILE/);
      expect(r.out).not.toContain('oci-layout');
    }
    const j = await runCli(['save', '--json', 'localhost/app:1'], { root: a });
    expect(j.code).toBe(125);
    expect(j.stdout).toBe('');
    expect(j.stderr).toMatch(/--json needs -o FILE/);
  });

  it('load and copy show progress: bars on a terminal, nothing on a pipe, NDJSON with --json, none with -q', async () => {
    const a = join(tempDir(), 'a');
    const digest = await seed(a);
    const file = join(tempDir(), 'p.tar');
    expect((await runCli(['save', '-o', file, 'localhost/app:1'], { root: a })).code).toBe(0);
    const sb = cliSandbox();
    const onTty = async (root: string, args: string): Promise<string> => {
      const { stdout } = await run('script', ['-qec', `${process.execPath} ${CLI_PATH} ${args}`, '/dev/null'], { env: { ...sb.env, S2N_OCI_ROOT: root } });
      return stdout;
    };
    const tty = await onTty(join(tempDir(), 'b'), `load -i ${file}`);
    expect(tty).toContain(`loading docker-archive:${file}:localhost/app:1 (${digest})`);
    expect(tty).toMatch(/\[=+\] [\d.]+ [kMG]?B\/[\d.]+ [kMG]?B {2}done/);
    expect(tty).toContain('Loaded image: localhost/app:1');
    const quiet = await onTty(join(tempDir(), 'c'), `load -q -i ${file}`);
    expect(quiet).not.toContain('loading');
    expect(quiet).toContain('Loaded image: localhost/app:1');

    const pipe = await runCli(['load', '-i', file], { root: join(tempDir(), 'd') });
    expect(pipe.code, pipe.stderr).toBe(0);
    expect(pipe.stderr).toBe('');
    const json = await runCli(['load', '--json', '-i', file], { root: join(tempDir(), 'e') });
    expect(json.code, json.stderr).toBe(0);
    const events = json.stderr.trim().split('\n').map((l) => JSON.parse(l) as { type: string });
    expect(events[0]?.type).toBe('resolved');
    expect(events.filter((e) => e.type === 'blob-done')).toHaveLength(3);

    const copyTty = await onTty(a, `copy localhost/app:1 oci-archive:${join(tempDir(), 'c.tar')}`);
    expect(copyTty).toContain(`copying `);
    expect(copyTty).toMatch(new RegExp(`Copied .* ${digest}`));
  });
});
