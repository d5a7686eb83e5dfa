/**
 * zstd decoders for layers, measured: the `zstd` program as a pipe (what
 * decompress.ts used first) against zstd-napi's DecompressStream, on a
 * ~100 MB tar (layer 1 of the realistic unpack image, zstd -3). Each run is
 * a fresh process decompressing into a hash, so peak RSS is the decoder's.
 *
 *   node dist/bench/zstd.js [--runs N]
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { zstdDecompressor, type ZstdDecoder } from '../src/sources/archive/decompress.js';
import { realisticImage } from '../test/unpack/realistic-image.js';
import { compareTools, mb, measure, type Tool } from './measure.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, child: { type: 'string' }, file: { type: 'string' } } });

async function child(impl: ZstdDecoder, file: string): Promise<void> {
  const h = createHash('sha256');
  await pipeline(
    createReadStream(file, { highWaterMark: 1 << 20 }),
    zstdDecompressor(impl, file),
    new Writable({
      write(c: Buffer, _e, cb) {
        h.update(c);
        cb();
      },
    }),
  );
  process.stdout.write(h.digest('hex'));
}

async function main(): Promise<void> {
  const work = process.env.S2N_BENCH_DIR ?? join(tmpdir(), 's2n-bench');
  const image = await realisticImage();
  const file = join(work, `zstd-${image.layers[0]!.digest.slice(7, 19)}.tar.zst`);
  if (!existsSync(file)) {
    execFileSync('mkdir', ['-p', work]);
    execFileSync('sh', ['-c', 'gzip -dc "$1" | zstd -q -3 -T1 -o "$2"', 'sh', image.layers[0]!.path, file]);
  }
  const tarBytes = Number(execFileSync('sh', ['-c', 'zstd -dc "$1" | wc -c', 'sh', file], { encoding: 'utf8' }).trim());
  console.error(`input ${file}: ${mb(statSync(file).size)} zstd, ${mb(tarBytes)} tar\n`);
  const self = new URL(import.meta.url).pathname;
  const tools: Tool[] = (['napi', 'program'] as const).map((impl) => ({
    name: impl === 'napi' ? 'zstd-napi DecompressStream' : 'zstd -d program (pipe)',
    run: () => measure(process.execPath, [self, '--child', impl, '--file', file]),
  }));
  await compareTools('zstd decompression of one layer', tools, Number(values.runs), tarBytes);
}

if (values.child) await child(values.child as ZstdDecoder, values.file!);
else await main();
