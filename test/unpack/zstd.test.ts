/** The zstd decoders for layers: same output, truncation is an error, and a frame declaring a huge window is refused, not allocated. */
import { execFileSync } from 'node:child_process';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { defaultZstdDecoder, zstdDecompressor, type ZstdDecoder } from '../../src/sources/archive/decompress.js';

async function decode(impl: ZstdDecoder, input: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([input]),
    zstdDecompressor(impl, 'test.zst'),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

/** A frame whose header declares a 2^`log` byte window (no content size, so the decoder must honour it), holding one raw block. */
function frameWithWindow(log: number, data: Buffer): Buffer {
  const magic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
  const fhd = Buffer.from([0x00]); // no single-segment, no checksum, no dictionary, no content size
  const wd = Buffer.from([(log - 10) << 3]); // exponent, mantissa 0
  const bh = data.length * 8 + 1; // last block, raw, size
  return Buffer.concat([magic, fhd, wd, Buffer.from([bh & 0xff, (bh >> 8) & 0xff, (bh >> 16) & 0xff]), data]);
}

const hasProgram = (() => {
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasProgram)('zstd decoders', () => {
  const data = Buffer.from('hello zstd '.repeat(100_000));
  const compressed = execFileSync('zstd', ['-q', '-c'], { input: data });

  it('zstd-napi is the default on Node versions without node:zlib zstd', () => {
    expect(['node', 'napi']).toContain(defaultZstdDecoder());
  });

  it.each(['napi', 'program'] as const)('%s: decodes, and refuses truncated input', async (impl) => {
    expect((await decode(impl, compressed)).equals(data)).toBe(true);
    await expect(decode(impl, compressed.subarray(0, compressed.length - 10))).rejects.toMatchObject({ code: 'EARCHIVE' });
  });

  it.each(['napi', 'program'] as const)('%s: a window over 128 MiB is refused at the frame header', async (impl) => {
    // The crafted frame is valid: with a 1 MiB window it decodes.
    expect((await decode(impl, frameWithWindow(20, Buffer.from('abc')))).toString()).toBe('abc');
    expect((await decode(impl, frameWithWindow(27, Buffer.from('abc')))).toString()).toBe('abc');
    const before = process.memoryUsage().rss;
    await expect(decode(impl, frameWithWindow(31, Buffer.from('abc')))).rejects.toMatchObject({ code: 'EARCHIVE' });
    await expect(decode(impl, frameWithWindow(28, Buffer.from('abc')))).rejects.toMatchObject({ code: 'EARCHIVE' });
    // Nothing near 2 GiB was allocated on the way to the refusal.
    expect(process.memoryUsage().rss - before).toBeLessThan(256 << 20);
  });
});
