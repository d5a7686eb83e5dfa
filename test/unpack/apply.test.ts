/** Layer semantics: whiteouts, opaque dirs, links, modes, ownership, mtimes, compression, diff_id, tar-stream guards. */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyLayer, unpackImage } from '../../src/unpack/index.js';
import { buildTar, dir, file, hardlink, opaqueWhiteout, sha256, symlink, whiteout, type LayerEntry } from '../helpers/images.js';
import { tarBytes } from '../helpers/archives.js';
import { removeDir } from '../helpers/tmp.js';
import { apply, applyAll, END, makeEnv, outside, padBlock, paxRecords, PLANTED, rawHeader, withoutEnd, type Env } from './util.js';

/** An extended attribute's raw value (getfattr, package attr), or undefined when it is not set. */
function getXattr(path: string, name: string): Buffer | undefined {
  const r = spawnSync('getfattr', ['-h', '--only-values', '-n', name, '--', path], { stdio: ['ignore', 'pipe', 'ignore'] });
  return r.status === 0 ? r.stdout : undefined;
}

let env: Env;
beforeEach(async () => {
  env = await makeEnv();
});
afterEach(async () => {
  await removeDir(env.base);
});

const r = (p: string): string => join(env.root, p);
const freshRoot = async (): Promise<string> => {
  const d = join(env.base, `root-${Math.random().toString(36).slice(2)}`);
  await mkdir(d);
  return d;
};
const ls = async (p: string): Promise<string[]> => (await readdir(r(p))).sort();
const text = (p: string): Promise<string> => readFile(r(p), 'utf8');
const lower: LayerEntry[] = [dir('a'), file('a/x', 'x'), file('a/y', 'y'), dir('a/sub'), file('a/sub/z', 'z'), file('b', 'b')];

describe('whiteouts', () => {
  it('.wh.NAME removes a lower file and a lower directory', async () => {
    await applyAll(env, [lower, [whiteout('b'), whiteout('a/sub')]]);
    expect(existsSync(r('b'))).toBe(false);
    expect(await ls('a')).toEqual(['x', 'y']);
  });

  it.each([
    ['whiteout first', [whiteout('b'), file('b', 'new')]],
    ['whiteout last', [file('b', 'new'), whiteout('b')]],
  ])('a file whited-out in its own layer survives (%s)', async (_, upper) => {
    await applyAll(env, [lower, upper]);
    expect(await text('b')).toBe('new');
  });

  it.each([
    ['marker first', [opaqueWhiteout('a'), file('a/new', 'n'), dir('a/sub'), file('a/sub/w', 'w')]],
    ['marker last', [file('a/new', 'n'), dir('a/sub'), file('a/sub/w', 'w'), opaqueWhiteout('a')]],
    ['marker in the middle', [file('a/new', 'n'), opaqueWhiteout('a'), dir('a/sub'), file('a/sub/w', 'w')]],
  ])('opaque dir hides lower content, keeps this layer (%s)', async (_, upper) => {
    await applyAll(env, [lower, upper]);
    expect(await ls('a')).toEqual(['new', 'sub']);
    expect(await ls('a/sub')).toEqual(['w']);
    expect(await text('b')).toBe('b');
  });

  it('opaque root', async () => {
    await applyAll(env, [lower, [file('c', 'c'), opaqueWhiteout('')]]);
    expect(await ls('')).toEqual(['c']);
  });

  it('whiteout of something absent is a no-op; whiteout entries are not extracted', async () => {
    await applyAll(env, [lower, [whiteout('nope'), whiteout('missing/deeper')]]);
    expect(existsSync(r('.wh.nope'))).toBe(false);
    expect(existsSync(r('missing'))).toBe(false);
  });
});

describe('entries', () => {
  it('hardlinks within a layer and across layers', async () => {
    await applyAll(env, [[file('f', 'data'), hardlink('h1', 'f')], [hardlink('h2', '/f'), hardlink('d/h3', 'h1')]]);
    const ino = (await stat(r('f'))).ino;
    for (const p of ['h1', 'h2', 'd/h3']) expect((await stat(r(p))).ino).toBe(ino);
    expect((await stat(r('f'))).nlink).toBe(4);
  });

  it('hardlink to a missing target or a directory is refused', async () => {
    await expect(apply(env, [hardlink('h', 'nope')])).rejects.toMatchObject({ code: 'EARCHIVE' });
    await expect(apply(env, [dir('d'), hardlink('h', 'd')])).rejects.toMatchObject({ code: 'EUNSAFEPATH' });
  });

  it('symlink targets are stored verbatim', async () => {
    await apply(env, [symlink('s1', '/etc/../nowhere'), symlink('s2', '../../..'), symlink('s3', 'rel/x')]);
    expect(await import('node:fs/promises').then((f) => Promise.all(['s1', 's2', 's3'].map((p) => f.readlink(r(p)))))).toEqual([
      '/etc/../nowhere',
      '../../..',
      'rel/x',
    ]);
  });

  it('setuid/setgid/sticky bits are kept after chown', async () => {
    await apply(env, [file('su', '#!', { mode: 0o4755, uid: 1000, gid: 1000 }), file('sg', '#!', { mode: 0o2711, uid: 7, gid: 8 }), dir('t', { mode: 0o1777 })]);
    expect((await stat(r('su'))).mode & 0o7777).toBe(0o4755);
    expect((await stat(r('sg'))).mode & 0o7777).toBe(0o2711);
    expect((await stat(r('t'))).mode & 0o7777).toBe(0o1777);
  });

  it('file modes are exact whether open() can set them (umask) or fchmod must', async () => {
    const modes = [0o644, 0o755, 0o600, 0o400, 0o666, 0o777, 0o664, 0o4755, 0o1755];
    const me = { uid: process.geteuid!(), gid: process.getegid!() };
    await apply(env, modes.map((m) => file(`m${m.toString(8)}`, 'x', { mode: m, ...me })));
    for (const m of modes) expect((await stat(r(`m${m.toString(8)}`))).mode & 0o7777).toBe(m);
  });

  it("the unpacker's own uid/gid is kept in a setgid directory of a lower layer (no group inherited)", async () => {
    const me = { uid: process.geteuid!(), gid: process.getegid!() };
    const other = me.gid === 50 ? 51 : 50;
    await applyAll(env, [
      [dir('sg', { mode: 0o2775, uid: me.uid, gid: other })],
      [file('sg/f', 'x', me), dir('sg/d', me), file('sg/d/g', 'x', me), file('plain', 'x', me)],
    ]);
    expect((await stat(r('sg'))).gid).toBe(other);
    for (const p of ['sg/f', 'sg/d', 'sg/d/g', 'plain']) expect(await stat(r(p))).toMatchObject(me);
  });

  it('a symlinked parent met after its siblings (parent cache warm) is still resolved inside the root', async () => {
    const before = await outside(env);
    await applyAll(env, [
      [dir('a'), dir('a/b'), symlink('a/l', 'b'), symlink('a/up', '../../../..')],
      [dir('a'), file('a/x', 'x'), file('a/l/f', 'f'), file('a/up/g', 'g'), dir('a/b/c'), file('a/l/c/h', 'h')],
    ]);
    expect(await text('a/b/f')).toBe('f');
    expect(await text('g')).toBe('g');
    expect(await text('a/b/c/h')).toBe('h');
    expect((await lstat(r('a/l'))).isSymbolicLink()).toBe(true);
    expect(await outside(env)).toEqual(before);
  });

  it("ownership 'real' chowns files, dirs and symlinks; 'none' does not", async () => {
    await apply(env, [dir('d', { uid: 11, gid: 12 }), file('d/f', 'x', { uid: 1234, gid: 5678 }), symlink('s', 'd', { uid: 21, gid: 22 }), file('big', 'x', { pax: { uid: '3000000', gid: '3000001' } })]);
    expect(await stat(r('d'))).toMatchObject({ uid: 11, gid: 12 });
    expect(await stat(r('d/f'))).toMatchObject({ uid: 1234, gid: 5678 });
    expect(await lstat(r('s'))).toMatchObject({ uid: 21, gid: 22 });
    expect(await stat(r('big'))).toMatchObject({ uid: 3000000, gid: 3000001 });
    await apply(env, [file('n', 'x', { uid: 1234, gid: 5678 })], { ownership: 'none' });
    expect(await stat(r('n'))).toMatchObject({ uid: process.getuid!(), gid: process.getgid!() });
  });

  it('directory mtimes are set after their contents', async () => {
    const t = new Date('2020-02-02T00:00:00Z');
    await apply(env, [dir('d', { mtime: t }), file('d/f', 'x'), dir('d/e', { mtime: t }), file('d/e/g', 'x'), symlink('d/s', 'f')]);
    expect((await stat(r('d'))).mtime.getTime()).toBe(t.getTime());
    expect((await stat(r('d/e'))).mtime.getTime()).toBe(t.getTime());
    expect((await stat(r('d/f'))).mtime.toISOString()).toBe('2024-01-01T00:00:00.000Z');
  });

  it('duplicate entries: last wins (file/file, dir/file, file/dir)', async () => {
    await apply(env, [file('f', 'one'), file('f', 'two'), dir('x'), file('x/in', 'i'), file('x', 'now a file'), file('y', 'y'), dir('y', { mode: 0o700 })]);
    expect(await text('f')).toBe('two');
    expect(await text('x')).toBe('now a file');
    expect((await stat(r('y'))).isDirectory()).toBe(true);
  });

  it('a lower directory replaced by a file, and a file by a directory', async () => {
    await applyAll(env, [lower, [file('a', 'file now'), dir('b')]]);
    expect(await text('a')).toBe('file now');
    expect((await stat(r('b'))).isDirectory()).toBe(true);
  });

  it('device nodes and FIFOs are skipped with one warning', async () => {
    const res = await apply(env, [
      { type: 'character-device', path: 'dev/null', devmajor: 1, devminor: 3 },
      { type: 'block-device', path: 'dev/sda', devmajor: 8, devminor: 0 },
      { type: 'fifo', path: 'p' },
      file('ok', 'ok'),
    ]);
    expect(res.skipped).toBe(3);
    expect(env.warnings.filter((w) => w.kind === 'device')).toHaveLength(1);
    expect(existsSync(r('dev/null'))).toBe(false);
    expect(await text('ok')).toBe('ok');
  });

  it('xattrs are applied (with setfattr), and reported once when setfattr is missing', async () => {
    await apply(env, [file('a', 'x', { pax: { 'SCHILY.xattr.user.k': 'v1' } }), dir('d/', { pax: { 'SCHILY.xattr.user.dir': 'on a dir' } })]);
    expect(env.warnings.filter((w) => w.kind === 'xattr')).toEqual([]);
    expect(getXattr(r('a'), 'user.k')?.toString()).toBe('v1');
    expect(getXattr(r('d'), 'user.dir')?.toString()).toBe('on a dir');
    const env2 = await makeEnv();
    await apply(env2, [file('a', 'x', { pax: { 'SCHILY.xattr.user.k': 'v' } }), file('b', 'x', { pax: { 'SCHILY.xattr.user.k': 'v' } })], { setfattr: '/nonexistent/setfattr' });
    expect(env2.warnings.filter((w) => w.kind === 'xattr').map((w) => w.message)).toEqual([expect.stringMatching(/setfattr \(package attr\) is not installed/)]);
  });

  it('xattr values are kept byte for byte (binary values tar-stream would decode as UTF-8)', async () => {
    const value = Buffer.from([0x01, 0x00, 0xff, 0x80, 0xc3, 0x41]);
    const body = Buffer.concat([Buffer.from(' SCHILY.xattr.user.bin='), value, Buffer.from('\n')]);
    let len = body.length + 2;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    const paxData = Buffer.concat([Buffer.from(String(len)), body]);
    await apply(env, tarBytes([{ name: 'PaxHeaders/bin', typeflag: 'x', data: paxData }, { name: 'bin', data: 'x' }]));
    expect(getXattr(r('bin'), 'user.bin')).toEqual(value);
  });

  it('an xattr the kernel refuses is skipped with one warning; the entry is still there', async () => {
    await apply(env, [symlink('l', 'target', { pax: { 'SCHILY.xattr.user.k': 'v' } }), file('f', 'ok')]);
    expect(readlinkSync(r('l'))).toBe('target');
    expect(env.warnings.filter((w) => w.kind === 'xattr').map((w) => w.message)).toEqual([expect.stringMatching(/user\.k on "l"/)]);
  });

  it('xattrs follow the entry, never a symlink out of the root', async () => {
    await apply(env, [symlink('out', env.base), file('out/planted', 'inside', { pax: { 'SCHILY.xattr.user.k': 'v' } })]);
    expect(getXattr(env.planted, 'user.k')).toBeUndefined();
    expect(readFileSync(env.planted, 'utf8')).toBe(PLANTED);
  });
});

describe('compression and diff_id', () => {
  it.each(['none', 'gzip', 'zstd'] as const)('%s layers', async (compress) => {
    const entries = [dir('d'), file('d/f', 'hello'.repeat(1000))];
    const raw = await buildTar(entries);
    const res = await apply(env, entries, { compress, diffId: sha256(raw) });
    expect(res).toMatchObject({ compression: compress, diffId: sha256(raw), entries: 2, size: raw.length });
    expect(await text('d/f')).toBe('hello'.repeat(1000));
  });

  it('diff_id mismatch is EDIGEST', async () => {
    const wrong = sha256('something else');
    await expect(apply(env, [file('f', 'x')], { compress: 'gzip', diffId: wrong })).rejects.toMatchObject({
      code: 'EDIGEST',
      context: { expected: wrong },
    });
  });

  it('unpackImage applies layers in order and checks each diff_id', async () => {
    const layers = [lower, [whiteout('b'), file('a/x', 'X')]];
    const raws = await Promise.all(layers.map((l) => buildTar(l)));
    const res = await unpackImage(
      env.root,
      raws.map((raw) => ({ open: async () => Readable.from([gzipSync(raw)]), diffId: sha256(raw) })),
      { ownership: 'real' },
    );
    expect(res.map((x) => x.diffId)).toEqual(raws.map((x) => sha256(x)));
    expect(await text('a/x')).toBe('X');
    expect(existsSync(r('b'))).toBe(false);
    await expect(
      unpackImage(env.root, [{ open: async () => Readable.from([raws[0]!]), diffId: sha256('x') }], { ownership: 'real' }),
    ).rejects.toMatchObject({ code: 'EDIGEST' });
  });

  it('empty layer (no bytes) is an empty tar', async () => {
    const res = await apply(env, Buffer.alloc(0));
    expect(res.entries).toBe(0);
  });
});

describe('tar-stream guards', () => {
  it('guard: non-UTF-8 names are refused (they would decode lossily and collide)', async () => {
    const name = Buffer.from([0x66, 0xff, 0x66]); // "f\xfff"
    const t = Buffer.concat([rawHeader({ name, typeflag: '0', size: 1 }), padBlock(Buffer.from('x')), END]);
    await expect(apply(env, t)).rejects.toMatchObject({ code: 'EUNSAFEPATH' });
    const link = Buffer.concat([rawHeader({ name: 'l', typeflag: '2', size: 0, linkname: 'a\uFFFDb' }), END]);
    await expect(apply(env, link)).rejects.toMatchObject({ code: 'EUNSAFEPATH' });
  });

  it('guard: PAX global headers are ignored and never apply to later entries', async () => {
    const g = paxRecords({ path: 'evil', comment: 'x' });
    const t = Buffer.concat([rawHeader({ name: 'pax_global_header', typeflag: 'g', size: g.length }), padBlock(g), await buildTar([file('ok', 'ok', { pax: { comment: 'c' } }), file('ok2', 'ok2')])]);
    await apply(env, t);
    expect(await ls('')).toEqual(['ok', 'ok2']);
    expect(env.warnings.map((w) => w.kind)).toContain('pax-global');
  });

  it('guard: data after the end-of-archive marker is not extracted (but is hashed)', async () => {
    const t = Buffer.concat([await buildTar([file('a', 'a')]), await buildTar([file('b', 'b')])]);
    const res = await apply(env, t, { diffId: sha256(t) });
    expect(await ls('')).toEqual(['a']);
    expect(res.diffId).toBe(sha256(t));
    expect(env.warnings.map((w) => w.kind)).toContain('trailing-data');
  });

  it.each([1, 7, 300, 511, 512, 513, 1500, 4099])('guard: framing does not depend on chunk boundaries (%i-byte chunks)', async (size) => {
    const g = paxRecords({ path: 'evil' });
    const body = Buffer.alloc(3000, 'y');
    const t = Buffer.concat([
      rawHeader({ name: 'pax_global_header', typeflag: 'g', size: g.length }),
      padBlock(g),
      withoutEnd(await buildTar([file('a', 'a'), file('big', body, { pax: { comment: 'c'.repeat(700) } }), dir('d'), file('d/e', 'e')])),
      END,
      await buildTar([file('after', 'x')]),
    ]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < t.length; i += size) chunks.push(t.subarray(i, i + size));
    const warnings: string[] = [];
    const res = await applyLayer(env.root, Readable.from(chunks), { ownership: 'real', diffId: sha256(t), onWarning: (w) => warnings.push(w.kind) });
    expect(res).toMatchObject({ diffId: sha256(t), size: t.length, entries: 4 });
    expect(await ls('')).toEqual(['a', 'big', 'd']);
    expect((await readFile(r('big'))).equals(body)).toBe(true);
    expect(await text('d/e')).toBe('e');
    expect(warnings.sort()).toEqual(['pax-global', 'trailing-data']);
    // One stray byte right after the marker, wherever the chunk boundary falls.
    const t2 = Buffer.concat([await buildTar([file('z', 'z')]), Buffer.from('Z')]);
    const w2: string[] = [];
    const c2: Buffer[] = [];
    for (let i = 0; i < t2.length; i += size) c2.push(t2.subarray(i, i + size));
    await applyLayer(await freshRoot(), Readable.from(c2), { ownership: 'real', onWarning: (w) => w2.push(w.kind) });
    expect(w2).toEqual(['trailing-data']);
    // Truncated anywhere inside the data: refused, whatever the chunking.
    const cut = t.subarray(0, 512 * 4 + 100);
    const parts: Buffer[] = [];
    for (let i = 0; i < cut.length; i += size) parts.push(cut.subarray(i, i + size));
    await expect(applyLayer(await freshRoot(), Readable.from(parts), { ownership: 'real' })).rejects.toMatchObject({ code: 'EARCHIVE' });
  });

  it('guard: a header after a single zero block is refused', async () => {
    const t = Buffer.concat([withoutEnd(await buildTar([file('a', 'a')])), Buffer.alloc(512), await buildTar([file('b', 'b')])]);
    await expect(apply(env, t)).rejects.toMatchObject({ code: 'EARCHIVE' });
  });

  it('guard: negative sizes are refused', async () => {
    const neg = Buffer.concat([Buffer.alloc(11, 0xff), Buffer.from([0xfe])]); // base-256 -1
    for (const typeflag of ['x', '0', 'L']) {
      const t = Buffer.concat([rawHeader({ name: 'n', typeflag, size: neg }), await buildTar([file('after', 'x')])]);
      await expect(apply(env, t)).rejects.toMatchObject({ code: 'EARCHIVE' });
    }
    const p = paxRecords({ size: '-5' });
    const t = Buffer.concat([rawHeader({ name: 'p', typeflag: 'x', size: p.length }), padBlock(p), rawHeader({ name: 'f', typeflag: '0', size: 0 }), END]);
    await expect(apply(env, t)).rejects.toMatchObject({ code: 'EARCHIVE' });
    expect(existsSync(r('after'))).toBe(false);
  });

  it('guard: header-only entries that claim data are refused', async () => {
    const t = Buffer.concat([rawHeader({ name: 'd/', typeflag: '5', size: 512 }), Buffer.alloc(512), END]);
    await expect(apply(env, t)).rejects.toMatchObject({ code: 'EARCHIVE' });
  });

  it('guard: a truncated archive is refused', async () => {
    const t = await buildTar([file('a', 'a'.repeat(2000))]);
    await expect(apply(env, t.subarray(0, 1024))).rejects.toMatchObject({ code: 'EARCHIVE' });
  });

  it('PAX path and size records still work', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}`;
    await apply(env, [file(long, 'long name')]);
    expect(await text(long)).toBe('long name');
  });
});
