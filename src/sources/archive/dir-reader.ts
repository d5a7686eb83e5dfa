/**
 * An OCI image layout directory as an ArchiveReader. Names are resolved
 * strictly inside the directory: `..` and absolute names are refused, and a
 * symlink may point anywhere inside the layout but not outside it.
 */
import { createReadStream } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { Readable } from 'node:stream';
import { sysCode } from '../../errors.js';
import type { ArchiveFile, ArchiveReader } from './reader.js';
import { archiveError, normaliseEntryName, unsafePathError } from './tar-format.js';

export class DirReader implements ArchiveReader {
  private constructor(
    readonly description: string,
    private readonly root: string,
  ) {}

  static async open(dir: string, description = dir): Promise<DirReader> {
    return new DirReader(description, await realpath(dir));
  }

  /** The real path of `name`, checked to be inside the root; undefined when it does not exist. */
  private async locate(name: string): Promise<string | undefined> {
    const n = normaliseEntryName(name, this.description);
    let real: string;
    try {
      real = await realpath(join(this.root, n));
    } catch (e) {
      if (sysCode(e) === 'ENOENT' || sysCode(e) === 'ENOTDIR') return undefined;
      throw e;
    }
    if (real !== this.root && !real.startsWith(this.root + sep)) {
      throw unsafePathError(this.description, `"${n}" is a symlink that points outside the layout`, n);
    }
    return real;
  }

  async stat(name: string): Promise<ArchiveFile | undefined> {
    const path = await this.locate(name);
    if (path === undefined) return undefined;
    const st = await stat(path);
    if (!st.isFile()) return undefined;
    return { name: normaliseEntryName(name, this.description), size: st.size };
  }

  private async pathOf(file: ArchiveFile): Promise<string> {
    const path = await this.locate(file.name);
    if (path === undefined) throw archiveError(this.description, `"${file.name}" is missing`, { entry: file.name });
    return path;
  }

  open(file: ArchiveFile): Readable {
    // The path is checked (inside the layout) when reading starts, not only at stat().
    const self = this;
    return Readable.from(
      (async function* () {
        yield* createReadStream(await self.pathOf(file), { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
      })(),
      { objectMode: false },
    );
  }

  async head(file: ArchiveFile, n: number): Promise<Buffer> {
    const fh = await open(await this.pathOf(file), 'r');
    try {
      const buf = Buffer.alloc(Math.min(n, file.size));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async close(): Promise<void> {
    /* nothing held open */
  }
}
