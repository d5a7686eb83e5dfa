/**
 * Whole-archive and layer decompression by magic bytes. gzip: node:zlib.
 * zstd, in order of preference:
 *   1. node:zlib where Node has it (22.15+, 23.8+);
 *   2. zstd-napi's DecompressStream (the reference libzstd, native, streaming);
 *   3. the `zstd` program (Debian's zstd package) as a pipe, when the native
 *      addon did not build or load on this host.
 * Measured on a 110 MB tar (bench/zstd.ts, 2 cores): zstd-napi takes about
 * as long as the pipe in wall time but less CPU, and needs no program on
 * PATH and no child process; the pipe stays as the fallback. Every decoder
 * caps the window at 2^27 (128 MiB), libzstd's and the zstd program's
 * default: a frame that declares a larger window is refused at its header,
 * before anything is allocated (pure-JS decoders allocate what the frame asks).
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
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

/** The largest zstd window we decode: 2^27 bytes, the default limit of libzstd, the zstd program and node:zlib. */
export const ZSTD_WINDOW_LOG_MAX = 27;

export type ZstdDecoder = 'node' | 'napi' | 'program';

function nodeZstd(): ZstdFactory | undefined {
  const f = (zlib as unknown as { createZstdDecompress?: (o?: object) => Transform }).createZstdDecompress;
  const key = (zlib.constants as unknown as Record<string, number | undefined>).ZSTD_d_windowLogMax;
  return typeof f === 'function' ? () => f(key === undefined ? {} : { params: { [key]: ZSTD_WINDOW_LOG_MAX } }) : undefined;
}

interface NapiModule {
  DecompressStream: new (p?: { windowLogMax?: number }) => Transform;
}

let napiModule: NapiModule | null | undefined;

/** zstd-napi, loaded on first use; null when the native addon is missing or does not load here. */
function napi(): NapiModule | null {
  if (napiModule === undefined) {
    try {
      napiModule = createRequire(import.meta.url)('zstd-napi') as NapiModule;
    } catch {
      napiModule = null;
    }
  }
  return napiModule;
}

const WINDOW_HINT = 'the zstd frame asks for a window over 128 MiB, more than we decode; recompress it without --long (or with --long=27 or less)';

function zstdError(where: string, e: unknown): S2nError {
  const why = e instanceof Error ? e.message : String(e);
  return new S2nError('EARCHIVE', `read archive ${where}: zstd could not decompress it (${why})`, {
    hint: /memory|window/i.test(why) ? WINDOW_HINT : 'the archive is damaged or truncated; create it again',
    context: { archive: where },
    cause: e,
  });
}

/** zstd-napi's DecompressStream with the window cap, its errors as EARCHIVE. */
function napiZstd(mod: NapiModule, where: string): Transform {
  const d = new mod.DecompressStream({ windowLogMax: ZSTD_WINDOW_LOG_MAX });
  const t = d._transform.bind(d);
  const f = d._flush.bind(d);
  d._transform = (chunk, enc, cb) => t(chunk, enc, (err, data) => cb(err ? zstdError(where, err) : null, data));
  d._flush = (cb) => f((err, data) => cb(err ? zstdError(where, err) : null, data));
  return d;
}

/** The best zstd decoder here: node:zlib, else zstd-napi, else the program. */
export function defaultZstdDecoder(): ZstdDecoder {
  if (nodeZstd()) return 'node';
  return napi() ? 'napi' : 'program';
}

/** A zstd-decompressing Duplex using `impl` (for benchmarks and tests; decompressor() picks the best). */
export function zstdDecompressor(impl: ZstdDecoder, where: string, zstdProgram = 'zstd'): Duplex {
  if (impl === 'node') {
    const f = nodeZstd();
    if (f) return f();
  }
  if (impl === 'napi' || impl === 'node') {
    const m = napi();
    if (m) return napiZstd(m, where);
  }
  return zstdProcess(zstdProgram, where);
}

/** A decompressing Duplex for `c` (not 'none'); EARCHIVE for formats we do not read. */
export function decompressor(c: Exclude<Compression, 'none'>, where: string, zstdProgram = 'zstd'): Duplex {
  if (c === 'gzip') return zlib.createGunzip({ chunkSize: 256 * 1024 });
  if (c === 'zstd') return zstdDecompressor(defaultZstdDecoder(), where, zstdProgram);
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
  const child = spawn(program, ['-d', '-c', '-q', '--memory=128MB'], { stdio: ['pipe', 'pipe', 'pipe'] });
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
          hint: /--long|--memory/.test(why) ? WINDOW_HINT : 'the archive is damaged or truncated; create it again',
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
