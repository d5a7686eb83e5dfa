/**
 * The tar reader both archive paths share: headers read in place (TarIndex)
 * or from a stream (SpoolReader), with the same rules for names, links,
 * sizes and truncation.
 */
import { createHash } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ArchiveReader } from '../../../src/sources/archive/reader.js';
import { readSmallFile } from '../../../src/sources/archive/reader.js';
import { TarIndex } from '../../../src/sources/archive/tar-index.js';
import { SpoolReader } from '../../../src/sources/archive/tar-spool.js';
import { tarBytes } from '../../helpers/archives.js';
import { tempDir } from '../../helpers/cli.js';

type Mode = 'file' | 'stream';

async function openTar(bytes: Buffer, mode: Mode, spoolDir = tempDir()): Promise<ArchiveReader> {
  if (mode === 'file') {
    const p = join(tempDir(), 'a.tar');
    writeFileSync(p, bytes);
    return TarIndex.open(p, 'a.tar');
  }
  let n = 0;
  // Odd chunk sizes so headers and data straddle chunk boundaries.
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 777) chunks.push(bytes.subarray(i, i + 777));
  return SpoolReader.read(Readable.from(chunks), 'a.tar', { spoolPath: () => join(spoolDir, `spool-${n++}`), memoryEntryMax: 1000 });
}

async function text(r: ArchiveReader, name: string): Promise<string> {
  const f = await r.stat(name);
  if (!f) throw new Error(`${name} missing`);
  return (await readSmallFile(r, f, 1 << 20, 'file')).toString('utf8');
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected a failure');
}

describe.each<Mode>(['file', 'stream'])('tar reader (%s)', (mode) => {
  it('reads ustar entries, skips ./ and directories, reads data by offset', async () => {
    const big = Buffer.alloc(5000, 7);
    const r = await openTar(
      tarBytes([
        { name: './', type: 'dir' },
        { name: './a/', type: 'dir' },
        { name: './a/one.txt', data: 'one' },
        { name: 'big.bin', data: big },
        { name: 'empty', data: '' },
      ]),
      mode,
    );
    try {
      expect(await text(r, 'a/one.txt')).toBe('one');
      expect(await text(r, './a//one.txt')).toBe('one');
      const f = await r.stat('big.bin');
      expect(f?.size).toBe(5000);
      expect(Buffer.compare(await readSmallFile(r, f!, 1 << 20, 'x'), big)).toBe(0);
      expect((await r.head(f!, 4)).length).toBe(4);
      expect(await text(r, 'empty')).toBe('');
      expect(await r.stat('a')).toBeUndefined(); // a directory is not a file
      expect(await r.stat('nope')).toBeUndefined();
      if (mode === 'stream') expect(f?.digest).toBe(`sha256:${createHash('sha256').update(big).digest('hex')}`);
    } finally {
      await r.close();
    }
  });

  it('reads GNU long names and PAX paths', async () => {
    const longDir = `${'d'.repeat(80)}/${'e'.repeat(80)}`;
    const r = await openTar(
      tarBytes([
        { name: `${longDir}/gnu.txt`, data: 'gnu', longName: 'gnu' },
        { name: `${longDir}/pax.txt`, data: 'pax', longName: 'pax' },
      ]),
      mode,
    );
    try {
      expect(await text(r, `${longDir}/gnu.txt`)).toBe('gnu');
      expect(await text(r, `${longDir}/pax.txt`)).toBe('pax');
    } finally {
      await r.close();
    }
  });

  it('follows symlinks and hard links that stay inside the archive', async () => {
    const r = await openTar(
      tarBytes([
        { name: 'x/layer.tar', data: 'layer bytes' },
        { name: 'y/layer.tar', type: 'symlink', linkname: '../x/layer.tar' },
        { name: 'z/layer.tar', type: 'link', linkname: 'x/layer.tar' },
      ]),
      mode,
    );
    try {
      expect(await text(r, 'y/layer.tar')).toBe('layer bytes');
      expect(await text(r, 'z/layer.tar')).toBe('layer bytes');
    } finally {
      await r.close();
    }
  });

  const refusals: Array<[string, () => Buffer, string, RegExp]> = [
    ['a ".." entry', () => tarBytes([{ name: '../evil', data: 'x' }]), 'EUNSAFEPATH', /"\.\.\/evil" has a "\.\." component/],
    ['a ".." inside a name', () => tarBytes([{ name: 'a/../../evil', data: 'x' }]), 'EUNSAFEPATH', /"\.\." component/],
    ['an absolute name', () => tarBytes([{ name: '/etc/passwd', data: 'x' }]), 'EUNSAFEPATH', /absolute path/],
    ['a symlink out of the archive', () => tarBytes([{ name: 'a/layer.tar', type: 'symlink', linkname: '../../etc/passwd' }]), 'EUNSAFEPATH', /points outside the archive/],
    ['an absolute symlink', () => tarBytes([{ name: 'layer.tar', type: 'symlink', linkname: '/etc/passwd' }]), 'EUNSAFEPATH', /absolute path/],
    ['a hard link with ".."', () => tarBytes([{ name: 'l', type: 'link', linkname: '../x' }]), 'EUNSAFEPATH', /outside the archive/],
    ['a long ".." name', () => tarBytes([{ name: `${'a/'.repeat(60)}../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../..`, data: 'x', longName: 'gnu' }]), 'EUNSAFEPATH', /"\.\." component/],
    ['names that collide after normalisation', () => tarBytes([{ name: 'manifest.json', data: '[]' }, { name: './manifest.json', data: '[1]' }]), 'EARCHIVE', /appears more than once/],
    ['a file that is also a directory', () => tarBytes([{ name: 'a', data: 'x' }, { name: 'a/b', data: 'y' }]), 'EARCHIVE', /is a file but "a\/b" is inside it/],
    ['a negative size', () => tarBytes([{ name: 'a', data: '', sizeField: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]) }]), 'EARCHIVE', /negative or malformed size/],
    ['a device', () => tarBytes([{ name: 'dev', type: 'char' }]), 'EARCHIVE', /never holds/],
    ['a bad checksum', () => {
      const b = tarBytes([{ name: 'a', data: 'x' }]);
      b[0] = 0x62;
      return b;
    }, 'EARCHIVE', /checksum/],
    ['no end-of-archive marker', () => tarBytes([{ name: 'a', data: 'x' }], { end: false }), 'EARCHIVE', /truncated \(no end-of-archive marker/],
    ['data cut short', () => tarBytes([{ name: 'a', data: Buffer.alloc(4000, 1) }]).subarray(0, 2048), 'EARCHIVE', /truncated/],
    ['a header cut short', () => tarBytes([{ name: 'a', data: 'x' }]).subarray(0, 1024 + 100), 'EARCHIVE', /truncated/],
  ];
  it.each(refusals)('refuses %s', async (_what, build, code, message) => {
    const spoolDir = tempDir();
    const e = await failure(openTar(build(), mode, spoolDir));
    expect(e.code).toBe(code);
    expect(e.message).toMatch(message);
    expect(readdirSync(spoolDir)).toEqual([]);
  });

  it('refuses a huge size (data past the end) and a link loop', async () => {
    const huge = Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0]); // base-256: 2^36 bytes
    expect((await failure(openTar(tarBytes([{ name: 'a', data: '', sizeField: huge }]), mode))).message).toMatch(/truncated/);
    const r = await openTar(tarBytes([{ name: 'a', type: 'symlink', linkname: 'b' }, { name: 'b', type: 'symlink', linkname: 'a' }]), mode);
    try {
      expect((await failure(r.stat('a'))).message).toMatch(/link loop/);
    } finally {
      await r.close();
    }
  });
});

describe('spooled tar stream', () => {
  it('keeps small entries in memory, spools big ones, and removes the spool files on close', async () => {
    const dir = tempDir();
    const r = await openTar(tarBytes([{ name: 'small', data: 'tiny' }, { name: 'big', data: Buffer.alloc(3000, 1) }]), 'stream', dir);
    expect(readdirSync(dir)).toHaveLength(1);
    expect(await text(r, 'small')).toBe('tiny');
    expect((await r.stat('big'))?.size).toBe(3000);
    await r.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removes what it spooled when the stream fails half-way', async () => {
    const dir = tempDir();
    const bytes = tarBytes([{ name: 'big', data: Buffer.alloc(3000, 1) }, { name: 'b2', data: Buffer.alloc(3000, 2) }]);
    const e = await failure(openTar(bytes.subarray(0, 5000), 'stream', dir));
    expect(e.code).toBe('EARCHIVE');
    expect(readdirSync(dir)).toEqual([]);
  });
});
