/**
 * Other OCI tools read the store as a plain image layout: skopeo finds our
 * names through org.opencontainers.image.ref.name, umoci lists them.
 */
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContentStore } from '../../src/store/store.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';
import { indexOf, tinyImage } from './util.js';

const execFileP = promisify(execFile);

function onPath(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const hasSkopeo = onPath('skopeo');
const hasUmoci = onPath('umoci');

let dir: string;
let store: ContentStore;
beforeEach(async () => {
  dir = await makeTempDir('s2n-interop-');
  store = await ContentStore.open(join(dir, 'store'));
});
afterEach(async () => {
  await removeDir(dir);
});

describe.skipIf(!hasSkopeo)('skopeo reads the store (skopeo not on PATH: skipped)', () => {
  it('inspect --raw oci:ROOT:NAME returns our manifest bytes, for tag and digest names', async () => {
    const img = await tinyImage();
    for (const b of img.blobs) await store.putBytes(b.desc, b.bytes);
    const byTag = 'docker.io/library/tiny:latest';
    const byDigest = `127.0.0.1:5000/app@${img.manifest.digest}`;
    await store.tag(byTag, img.manifest);
    await store.tag(byDigest, img.manifest);
    for (const name of [byTag, byDigest]) {
      const { stdout } = await execFileP('skopeo', ['inspect', '--raw', `oci:${store.root}:${name}`], { encoding: 'buffer' });
      expect(Buffer.compare(stdout, img.manifestBytes)).toBe(0);
    }
    // Non-raw inspect reads the config too.
    const { stdout } = await execFileP('skopeo', ['inspect', `oci:${store.root}:${byTag}`]);
    const info = JSON.parse(stdout) as { Digest: string; Layers: string[]; Os: string };
    expect(info.Digest).toBe(img.manifest.digest);
    expect(info.Layers).toEqual([img.layer.digest]);
    // copy reads and verifies every blob.
    await execFileP('skopeo', ['copy', '--quiet', `oci:${store.root}:${byTag}`, `dir:${join(dir, 'copied')}`]);
  });

  it('follows a stored index', async () => {
    const img = await tinyImage();
    for (const b of img.blobs) await store.putBytes(b.desc, b.bytes);
    const idx = indexOf([{ ...img.manifest, platform: { os: 'linux', architecture: 'amd64' } }]);
    await store.putBytes(idx.desc, idx.bytes);
    await store.tag('docker.io/library/multi:1', idx.desc);
    const { stdout } = await execFileP('skopeo', ['inspect', '--raw', `oci:${store.root}:docker.io/library/multi:1`], { encoding: 'buffer' });
    expect(Buffer.compare(stdout, idx.bytes)).toBe(0);
  });
});

describe.skipIf(!hasUmoci)('umoci reads the store (umoci not on PATH: skipped)', () => {
  it('lists our names', async () => {
    const img = await tinyImage();
    for (const b of img.blobs) await store.putBytes(b.desc, b.bytes);
    await store.tag('docker.io/library/tiny:latest', img.manifest);
    const { stdout } = await execFileP('umoci', ['ls', '--layout', store.root]);
    expect(stdout.trim().split('\n')).toEqual(['docker.io/library/tiny:latest']);
  });
});
