/**
 * `s2n-oci load` end to end: archives written by skopeo (docker-archive,
 * oci-archive) and by test code (multi-image and Docker ≥ 25 docker save,
 * compressed, on stdin), then `images`/`inspect` on the result; and hostile
 * or broken archives, each of which must fail with one error line and a hint
 * and leave the store exactly as it was.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { cliSandbox, expectRunnerError, runCli, tempDir, type CliResult } from '../helpers/cli.js';
import { dockerSaveArchive, dockerSaveEntries, ociArchive, rawLayer, tarBytes, writeOciLayout, type RawTarEntry } from '../helpers/archives.js';
import { buildImage, buildIndex, dir, file, smallImage, type TestImage } from '../helpers/images.js';

const run = promisify(execFile);

function hasProgram(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, name)));
}

interface StoreState {
  blobs: string[];
  ingest: string[];
  index: string;
}

function storeState(root: string): StoreState {
  const list = (...p: string[]): string[] => (existsSync(join(root, ...p)) ? readdirSync(join(root, ...p)).sort() : []);
  return { blobs: list('blobs', 'sha256'), ingest: list('ingest'), index: existsSync(join(root, 'index.json')) ? readFileSync(join(root, 'index.json'), 'utf8') : '' };
}

interface ImageRow {
  name: string;
  repository: string;
  tag: string;
  digest: string;
  id: string;
}

async function images(): Promise<ImageRow[]> {
  const r = await runCli(['images', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ImageRow[];
}

async function inspect(name: string): Promise<{ Digest: string; DiffIds: string[]; Layers: Array<{ digest: string; mediaType: string }> }> {
  const r = await runCli(['inspect', name]);
  expect(r.code, r.stderr).toBe(0);
  const [one] = JSON.parse(r.stdout) as Array<{ Digest: string; DiffIds: string[]; Layers: Array<{ digest: string; mediaType: string }> }>;
  if (!one) throw new Error('inspect printed nothing');
  return one;
}

function save(bytes: Buffer, name = 'image.tar'): string {
  const p = join(tempDir(), name);
  writeFileSync(p, bytes);
  return p;
}

const expectCleanFailure = (r: CliResult, message: RegExp): void => void expectRunnerError(r, message);

/** An OCI layout holding `img` as `latest`, in a temp dir. */
async function layoutOf(img: TestImage): Promise<string> {
  return writeOciLayout(join(tempDir(), 'layout'), [{ image: img, refName: 'latest' }]);
}

describe.skipIf(!hasProgram('skopeo'))('load archives written by skopeo', () => {
  it('docker-archive: named, layers stored uncompressed as their diff_ids; a second load adds nothing', async () => {
    const img = await smallImage({ marker: 'skopeo-docker' });
    const archive = join(tempDir(), 'app.tar');
    await run('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${await layoutOf(img)}:latest`, `docker-archive:${archive}:localhost/app:1`]);

    const r = await runCli(['load', '-i', archive]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('Loaded image: localhost/app:1\n');
    const [row] = await images();
    expect(row).toMatchObject({ name: 'localhost/app:1', repository: 'localhost/app', tag: '1', id: img.configDigest });
    const info = await inspect('localhost/app:1');
    expect(info.DiffIds).toEqual(img.config.rootfs.diff_ids);
    expect(info.Layers.map((l) => l.digest)).toEqual(img.config.rootfs.diff_ids);

    const root = cliSandbox().root;
    const before = storeState(root);
    const again = await runCli(['load', '--json', '-i', archive]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual([expect.objectContaining({ name: 'localhost/app:1', digest: info.Digest, config: img.configDigest })]);
    expect(storeState(root)).toEqual(before);
    expect(before.ingest).toEqual([]);
  });

  it('oci-archive: the original manifest digest is kept; a bare-tag ref.name loads untagged unless --tag', async () => {
    const img = await smallImage({ marker: 'skopeo-oci' });
    const layout = await layoutOf(img);
    const named = join(tempDir(), 'named.tar');
    const bare = join(tempDir(), 'bare.tar');
    await run('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${layout}:latest`, `oci-archive:${named}:localhost/app:2`]);
    await run('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${layout}:latest`, `oci-archive:${bare}:v1`]);

    const r = await runCli(['load', '-i', named]);
    expect(r.stdout).toBe('Loaded image: localhost/app:2\n');
    expect((await inspect('localhost/app:2')).Digest).toBe(img.manifestDigest);

    const untagged = await runCli(['load', '-i', bare]);
    expect(untagged.stdout).toBe(`Loaded image ID: ${img.manifestDigest}\n`);
    const tagged = await runCli(['load', '-i', bare, '--tag', 'example.com/x/y:3']);
    expect(tagged.stdout).toBe('Loaded image: example.com/x/y:3\n');
    expect((await images()).map((i) => i.name).sort()).toEqual(['example.com/x/y:3', 'localhost/app:2']);
  });
});

describe('load archives built in code', () => {
  it('a multi-image docker save archive: tagged, several tags, untagged, shared layer; JSON output', async () => {
    const base = [dir('etc/'), file('etc/os-release', 'ID=multi\n')];
    const a = await buildImage({ layers: [base, [file('a', 'a')]] });
    const b = await buildImage({ layers: [base, [file('b', 'b')]] });
    const c = await buildImage({ layers: [[file('c', 'c')]] });
    const archive = save(dockerSaveArchive([{ image: a, tags: ['a:1'] }, { image: b, tags: ['localhost:5000/b:2', 'b:latest'] }, { image: c }]));
    const r = await runCli(['load', '--json', '-i', archive]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Array<{ name: string | null; names: string[]; digest: string; config: string }>;
    expect(out.map((o) => [o.names, o.config])).toEqual([
      [['docker.io/library/a:1'], a.configDigest],
      [['localhost:5000/b:2', 'docker.io/library/b:latest'], b.configDigest],
      [[], c.configDigest],
    ]);
    expect(out[2]?.name).toBeNull();
    const rows = await images();
    expect(rows.map((x) => [x.repository, x.tag])).toEqual([
      ['docker.io/library/a', '1'],
      ['localhost:5000/b', '2'],
      ['docker.io/library/b', 'latest'],
      ['<none>', '<none>'],
    ]);
    // The untagged one is kept under its digest and found by it.
    expect((await inspect(out[2]?.digest ?? '')).Digest).toBe(out[2]?.digest);
    // Human output, docker's lines.
    const human = await runCli(['load', '-i', archive]);
    expect(human.stdout).toBe(`Loaded image: docker.io/library/a:1\nLoaded image: localhost:5000/b:2\nLoaded image: docker.io/library/b:latest\nLoaded image ID: ${out[2]?.digest}\n`);
  });

  it('picks one image of an archive by name; --tag renames it and needs one image', async () => {
    const a = await smallImage({ marker: 'pick-a' });
    const b = await smallImage({ marker: 'pick-b' });
    const archive = save(dockerSaveArchive([{ image: a, tags: ['a:1'] }, { image: b, tags: ['b:1'] }]));
    expectCleanFailure(await runCli(['load', '-i', archive, '--tag', 'x:1']), /--tag names one image, but the archive holds 2/);
    const r = await runCli(['load', '-i', archive, '--tag', 'x:1', '--tag', 'x:2', 'b:1']);
    expect(r.stdout, r.stderr).toBe('Loaded image: docker.io/library/x:1\nLoaded image: docker.io/library/x:2\n');
    expect((await images()).map((i) => i.id)).toEqual([b.configDigest, b.configDigest]);
    expectCleanFailure(await runCli(['load', '-i', archive, 'c:1']), /holds no image named c:1/);
  });

  it('a Docker ≥ 25 archive keeps the digest of the manifest inside it', async () => {
    const img = await smallImage({ marker: 'docker25' });
    const entries = dockerSaveEntries([{ image: img, tags: ['app:25'] }], { layout: 'docker25' });
    const index = JSON.parse(String(entries.find((e) => e.name === 'index.json')?.data)) as { manifests: Array<{ digest: string }> };
    const r = await runCli(['load', '-i', save(tarBytes(entries))]);
    expect(r.stdout, r.stderr).toBe('Loaded image: docker.io/library/app:25\n');
    expect((await inspect('app:25')).Digest).toBe(index.manifests[0]?.digest);
  });

  it('gzip-compressed from a file, zstd and plain tar on stdin, an OCI layout directory: one image, one digest', async () => {
    const img = await smallImage({ marker: 'compressed' });
    const tar = dockerSaveArchive([{ image: img, tags: ['z:1'] }]);
    const gz = await runCli(['load', '--json', '-i', save(gzipSync(tar), 'image.tar.gz')]);
    expect(gz.code, gz.stderr).toBe(0);
    const digest = (JSON.parse(gz.stdout) as Array<{ digest: string }>)[0]?.digest;
    const root = cliSandbox().root;
    const before = storeState(root);
    const stdin = await runCli(['load', '--json', '-i', '-'], { input: tar });
    expect((JSON.parse(stdin.stdout) as Array<{ digest: string }>)[0]?.digest, stdin.stderr).toBe(digest);
    if (hasProgram('zstd')) {
      const zst = join(tempDir(), 'image.tar.zst');
      await run('zstd', ['-q', '-o', zst, save(tar)]);
      const z = await runCli(['load', '--json', '-i', '-'], { input: readFileSync(zst) });
      expect((JSON.parse(z.stdout) as Array<{ digest: string }>)[0]?.digest, z.stderr).toBe(digest);
    }
    expect(storeState(root)).toEqual(before);
    const layout = await runCli(['load', '--json', '-i', await layoutOf(img), '--tag', 'from/layout:1']);
    expect(JSON.parse(layout.stdout)).toEqual([expect.objectContaining({ name: 'docker.io/from/layout:1', digest: img.manifestDigest })]);
  });

  it('an oci-archive of a multi-platform index loads the platform asked for', async () => {
    const amd = await smallImage({ platform: { os: 'linux', architecture: 'amd64' }, marker: 'amd' });
    const arm = await smallImage({ platform: { os: 'linux', architecture: 'arm64' }, marker: 'arm' });
    const idx = buildIndex([amd, arm], 'oci');
    const r = await runCli(['load', '--json', '--platform', 'linux/arm64', '-i', save(ociArchive([{ image: idx, refName: 'localhost/multi:1' }]))]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([expect.objectContaining({ name: 'localhost/multi:1', digest: arm.manifestDigest, index: idx.indexDigest })]);
  });
});

describe('hostile or broken archives leave the store as it was', () => {
  /** Two layers, so a bad second layer would find the first already committed if the load were not all-or-nothing. */
  async function victim(): Promise<TestImage> {
    return buildImage({ layers: [[dir('etc/'), file('etc/os-release', 'ID=victim\n')], [file('data', 'victim data')]] });
  }

  const edit = (f: (e: RawTarEntry[], img: TestImage) => void) => async (): Promise<Buffer> => {
    const img = await victim();
    const entries = dockerSaveEntries([{ image: img, tags: ['victim:1'] }]);
    f(entries, img);
    return tarBytes(entries);
  };
  const layerFiles = (e: RawTarEntry[]): RawTarEntry[] => e.filter((x) => x.name.endsWith('/layer.tar') && x.type === undefined);

  const cases: Array<[string, () => Promise<Buffer>, RegExp]> = [
    ['an entry with ..', edit((e) => void e.splice(1, 0, { name: '../evil', data: 'x' })), /"\.\.\/evil" has a "\.\." component/],
    ['an absolute entry', edit((e) => void e.splice(1, 0, { name: '/etc/evil', data: 'x' })), /absolute path/],
    ['a symlink out of the archive', edit((e) => void e.splice(1, 0, { name: 'link', type: 'symlink', linkname: '../../../etc/shadow' })), /points outside the archive/],
    ['a manifest.json over the size cap', edit((e) => {
      const m = e.find((x) => x.name === 'manifest.json');
      if (m) m.data = Buffer.alloc(9 * 1024 * 1024, 0x20);
    }), /manifest.json" is 9437184 bytes, over the/],
    ['a layer that does not match the config diff_ids', edit((e) => {
      const second = layerFiles(e)[1];
      if (second) second.data = Buffer.concat([second.data as Buffer, Buffer.alloc(512)]);
    }), /layer ".*layer.tar" does not match its config/],
    ['a missing layer file', edit((e) => void e.splice(e.indexOf(layerFiles(e)[1] as RawTarEntry), 1)), /layer ".*layer.tar" is missing/],
    ['a truncated archive', async () => (await edit(() => {})()).subarray(0, 5000), /truncated/],
    ['a truncated gzip archive', async () => {
      const gz = gzipSync(await edit(() => {})());
      return gz.subarray(0, gz.length - 20);
    }, /gzip data is damaged or truncated/],
    ['an oci-archive blob that does not match its digest', async () => {
      const img = await victim();
      const second = img.layers[1];
      if (!second) throw new Error('no second layer');
      img.blobs.set(second.digest, Buffer.concat([second.blob.subarray(0, -1), Buffer.from([second.blob.at(-1) === 0 ? 1 : 0])]));
      return ociArchive([{ image: img, refName: 'localhost/victim:1' }]);
    }, /content has digest sha256:[0-9a-f]{12}…, expected/],
    ['a config that is not JSON', edit((e, img) => {
      const cfg = e.find((x) => x.name === `${img.configDigest.slice(7)}.json`);
      if (cfg) cfg.data = '{not json';
    }), /is not valid JSON/],
  ];

  it.each(cases)('%s', async (_what, build, message) => {
    // Something in the store first, so "unchanged" covers a real index.json.
    const other = await smallImage({ marker: 'already-there' });
    expect((await runCli(['load', '-i', save(dockerSaveArchive([{ image: other, tags: ['other:1'] }]))])).code).toBe(0);
    const root = cliSandbox().root;
    const before = storeState(root);
    const bytes = await build();
    expectCleanFailure(await runCli(['load', '-i', save(bytes)]), message);
    expect(storeState(root)).toEqual(before);
    // The same through stdin (the one-pass path).
    const viaStdin = await runCli(['load', '-i', '-'], { input: bytes });
    expectCleanFailure(viaStdin, message);
    expect(storeState(root)).toEqual(before);
  });

  it('refuses what is not an archive at all', async () => {
    expectCleanFailure(await runCli(['load', '-i', save(Buffer.from('hello, world\n'))]), /not a tar archive/);
    expectCleanFailure(await runCli(['load', '-i', join(tempDir(), 'missing.tar')]), /no such file or directory/);
    const img = await smallImage();
    const raw = rawLayer(img, 0);
    // A tar, but a layer rather than an image archive.
    expectCleanFailure(await runCli(['load', '-i', save(raw)]), /neither a docker save archive/);
  });
});
