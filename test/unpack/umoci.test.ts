/** Differential test: the same layers unpacked by applyLayer and by `umoci unpack` give the same tree. */
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { unpackImage } from '../../src/unpack/index.js';
import { buildLayer, dir, file, hardlink, opaqueWhiteout, sha256, symlink, whiteout, type LayerEntry } from '../helpers/images.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { snapshot } from './util.js';

const hasUmoci = (() => {
  try {
    execFileSync('umoci', ['--version'], { stdio: 'ignore' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
})();

const LAYERS: LayerEntry[][] = [
  [
    dir('etc'),
    file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n'),
    dir('usr/bin', { mode: 0o755 }),
    file('usr/bin/su', 'su', { mode: 0o4755 }),
    file('usr/bin/tool', 'tool', { mode: 0o750, uid: 1000, gid: 100 }),
    hardlink('usr/bin/tool2', 'usr/bin/tool'),
    symlink('bin', 'usr/bin'),
    dir('var/lib/x', { mode: 0o700, uid: 33, gid: 33 }),
    file('var/lib/x/a', 'a'),
    file('var/lib/x/b', 'b'),
    dir('opt/keep'),
    file('opt/keep/old', 'old'),
    file('gone', 'gone'),
    dir('tmp', { mode: 0o1777 }),
  ],
  [
    whiteout('gone'),
    opaqueWhiteout('var/lib/x'),
    file('var/lib/x/c', 'c', { mode: 0o600 }),
    file('etc/passwd', 'root:x:0:0::/root:/bin/bash\n'),
    hardlink('etc/tool-link', 'usr/bin/tool'),
    symlink('etc/abs', '/usr/bin/su'),
    file('opt/keep/new', 'new', { uid: 5, gid: 6 }),
  ],
];

let base: string;
beforeEach(async () => {
  base = await makeTempDir('s2n-umoci-');
});
afterEach(async () => {
  await removeDir(base);
});

describe.skipIf(!hasUmoci)('differential: umoci', () => {
  it('applyLayer and umoci unpack produce the same tree', async () => {
    const layers = await Promise.all(LAYERS.map((l) => buildLayer(l, { compression: 'gzip' })));
    const layout = join(base, 'layout');
    const blobs = join(layout, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const put = async (b: Buffer): Promise<string> => {
      const d = sha256(b);
      await writeFile(join(blobs, d.slice(7)), b);
      return d;
    };
    for (const l of layers) await put(l.blob);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.length },
        layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      }),
    );
    const md = await put(manifest);
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
      }),
    );
    const bundle = join(base, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:latest`, bundle], { stdio: 'pipe' });

    const mine = join(base, 'mine');
    await mkdir(mine);
    await unpackImage(
      mine,
      layers.map((l) => ({ open: async () => Readable.from([l.blob]), diffId: l.diffId })),
      { ownership: 'real' },
    );
    const theirs = await snapshot(join(bundle, 'rootfs'));
    const ours = await snapshot(mine);
    expect(ours).toEqual(theirs);
    // Hard links: the same groups of paths share an inode.
    const groups = async (root: string, paths: string[]): Promise<string[][]> => {
      const by = new Map<number, string[]>();
      for (const p of paths) {
        const st = await lstat(join(root, p));
        if (st.isFile()) by.set(st.ino, [...(by.get(st.ino) ?? []), p]);
      }
      return [...by.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort();
    };
    const linked = await groups(mine, Object.keys(ours));
    expect(linked).toEqual(await groups(join(bundle, 'rootfs'), Object.keys(theirs)));
    expect(linked).toEqual([['etc/tool-link', 'usr/bin/tool', 'usr/bin/tool2']]);
    expect(Object.keys(ours)).toContain('var/lib/x/c');
    expect(Object.keys(ours)).not.toContain('var/lib/x/a');
  });
});
