/** The layer and archive assembler behind the demo images: order, merging, determinism. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/oci/digest.js';
import { validateImageConfig, validateIndex, validateManifest } from '../../src/oci/validate.js';
import { archiveIndex, assembleImage, buildLayer, fsDir, fsFile, fsSymlink, LayerTree, normalizePath, writeOciArchive } from '../../src/s2n/image-builder.js';
import { tempDir } from '../helpers/cli.js';

const MTIME = new Date('2024-01-01T00:00:00Z');

async function tarEntries(buf: Buffer): Promise<Array<{ name: string; type: string; uid: number; mode: number; mtime: number; body: string }>> {
  const ex = tar.extract();
  const out: Array<{ name: string; type: string; uid: number; mode: number; mtime: number; body: string }> = [];
  const done = (async () => {
    for await (const e of ex) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.push({ name: e.header.name, type: e.header.type ?? '', uid: e.header.uid ?? -1, mode: e.header.mode ?? 0, mtime: e.header.mtime?.getTime() ?? 0, body: Buffer.concat(chunks).toString() });
    }
  })();
  ex.end(buf);
  await done;
  return out;
}

describe('image builder', () => {
  it('normalizes paths and refuses ..', () => {
    expect(normalizePath('./usr/bin/')).toBe('usr/bin');
    expect(normalizePath('/etc//passwd')).toBe('etc/passwd');
    expect(normalizePath('./')).toBeUndefined();
    expect(() => normalizePath('usr/../../etc')).toThrow(/contains \.\./);
  });

  it('sorts parents first, adds missing parents, keeps the first dir and the last file of a path', () => {
    const t = new LayerTree();
    t.add(fsFile('usr/bin/b', 'one'));
    t.add(fsDir('usr', 0o700, 5, 5));
    t.add(fsDir('usr', 0o755));
    t.add(fsFile('usr-x', 'x'));
    t.add(fsFile('usr/bin/b', 'two'));
    t.add(fsSymlink('usr/bin/a', 'b'));
    const s = t.sorted();
    expect(s.map((e) => e.path)).toEqual(['usr', 'usr/bin', 'usr/bin/a', 'usr/bin/b', 'usr-x']);
    expect(s[0]).toMatchObject({ type: 'dir', mode: 0o700, uid: 5 });
    const b = s[3];
    expect(b?.type === 'file' ? b.content.toString() : '').toBe('two');
  });

  it('builds the same gzip bytes twice, with fixed mtimes and owners', async () => {
    const mk = (): LayerTree => {
      const t = new LayerTree();
      t.add(fsFile('app/run.py', 'print(1)\n', 0o644, 1000, 1000));
      t.add(fsDir('tmp', 0o1777));
      return t;
    };
    const a = await buildLayer(mk(), 'test', { mtime: MTIME });
    const b = await buildLayer(mk(), 'test', { mtime: MTIME });
    expect(a.digest).toBe(b.digest);
    expect(a.digest).toBe(sha256Digest(a.blob));
    expect(a.diffId).toBe(sha256Digest(gunzipSync(a.blob)));
    const entries = await tarEntries(gunzipSync(a.blob));
    expect(entries.map((e) => [e.name, e.type, e.uid, e.mode])).toEqual([
      ['app/', 'directory', 0, 0o755],
      ['app/run.py', 'file', 1000, 0o644],
      ['tmp/', 'directory', 0, 0o1777],
    ]);
    for (const e of entries) expect(e.mtime).toBe(MTIME.getTime());
  });

  it('writes an oci-archive whose index, manifest and config validate and name the image', async () => {
    const t = new LayerTree();
    t.add(fsFile('hello', 'hi'));
    const layer = await buildLayer(t, 'hello', { mtime: MTIME });
    const img = assembleImage({ name: 'localhost/x:1', platform: { os: 'linux', architecture: 'amd64' }, layers: [layer], config: { User: '1000' }, created: MTIME });
    validateManifest(img.manifest, { what: 'test' });
    validateImageConfig(img.config, { what: 'test' });
    const index = archiveIndex([img]);
    validateIndex(index, { what: 'test' });
    const file = join(tempDir(), 'x.oci.tar');
    await writeOciArchive(file, [img], MTIME);
    const entries = await tarEntries(readFileSync(file));
    expect(entries.map((e) => e.name)).toEqual(['blobs/', 'blobs/sha256/', 'oci-layout', 'index.json', ...[img.manifestDigest, img.configDigest, layer.digest].sort().map((d) => `blobs/sha256/${d.slice(7)}`)]);
    const idx = JSON.parse(entries.find((e) => e.name === 'index.json')?.body ?? '{}') as typeof index;
    expect(idx.manifests[0]?.annotations).toEqual({ 'io.containerd.image.name': 'localhost/x:1', 'org.opencontainers.image.ref.name': 'localhost/x:1' });
    expect(idx.manifests[0]?.digest).toBe(img.manifestDigest);
    expect(img.config.history).toEqual([{ created: MTIME.toISOString(), created_by: 'hello' }]);
  });
});
