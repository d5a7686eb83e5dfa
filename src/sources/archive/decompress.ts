/**
 * Whole-archive decompression by magic bytes. gzip: node:zlib. zstd: node:zlib
 * where Node has it (22.15+, 23.8+), else the `zstd` program (Debian's zstd
 * package) as a streaming filter. No npm binding is used: the maintained
 * streaming ones are native addons (prebuilt-binary downloads or node-gyp
 * builds), and the pure-JS decoders allocate the window the frame asks for,
 * which a hostile archive chooses; `zstd -d` refuses windows over 128 MiB by
 * default, as zlib's binding does.
 */
import { spawn } from 'node:child_process';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { S2nError } from '../../errors.js';

export type Compression = 'gzip' | 'zstd' | 'bzip2' | 'xz' | 'none';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 3 && head.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  return 'none';
}

type ZstdFactory = () => Transform;

function nodeZstd(): ZstdFactory | undefined {
  const f = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress;
  return typeof f === 'function' ? () => f() : undefined;
}

/** A decompressing Duplex for `c` (not 'none'); EARCHIVE for formats we do not read. */
export function decompressor(c: Exclude<Compression, 'none'>, where: string, zstdProgram = 'zstd'): Duplex {
  if (c === 'gzip') return zlib.createGunzip({ chunkSize: 256 * 1024 });
  if (c === 'zstd') return nodeZstd()?.() ?? zstdProcess(zstdProgram, where);
  throw new S2nError('EARCHIVE', `read archive ${where}: ${c}-compressed archives are not supported`, {
    hint: 'decompress it first, or compress with gzip or zstd',
    context: { archive: where, compression: c },
  });
}

/**
 * `zstd -d -c` as a Duplex: compressed bytes in, tar out. The output only
 * ends after the program exited 0, so a damaged or truncated frame is an
 * error, never a short archive.
 */
function zstdProcess(program: string, where: string): Duplex {
  const child = spawn(program, ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  let stderr = '';
  let stdoutEnded = false;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const finish = (): void => {
    if (!stdoutEnded || exit === undefined) return;
    if (exit.code === 0) out.end();
    else {
      const why = (stderr.trim().split('\n').pop() ?? '').replace(/^.*?\*stdin\*\\?\s*:\s*/, '');
      out.destroy(
        new S2nError('EARCHIVE', `read archive ${where}: zstd could not decompress it${why ? ` (${why.replace(/^zstd: /, '')})` : ''}`, {
          hint: 'the archive is damaged or truncated; create it again',
          context: { archive: where, exitCode: exit.code, signal: exit.signal },
        }),
      );
    }
  };
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  child.stdout.on('end', () => {
    stdoutEnded = true;
    finish();
  });
  child.stdout.pipe(out, { end: false });
  child.on('error', (e: NodeJS.ErrnoException) => {
    out.destroy(
      e.code === 'ENOENT'
        ? new S2nError('EARCHIVE', `read archive ${where}: it is zstd-compressed, and this Node.js has no zstd decoder and the zstd program is not installed`, {
            hint: 'install zstd (apt-get install zstd), use Node.js 22.15 or later, or decompress the archive first',
            context: { archive: where },
          })
        : e,
    );
  });
  child.on('close', (code, signal) => {
    exit = { code, signal };
    finish();
  });
  // An early close of stdin (the program died) surfaces through the exit status above.
  child.stdin.on('error', () => {});
  const duplex = Duplex.from({ writable: child.stdin, readable: out });
  duplex.on('close', () => {
    if (exit === undefined) child.kill('SIGKILL');
  });
  return duplex;
}
