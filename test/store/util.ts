/** Shared bits of the store tests: blobs, tiny images, dead pids, child processes running the real store. */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest } from '../../src/oci/types.js';

const execFileP = promisify(execFile);
export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function blob(content: Buffer | string, mediaType = 'application/octet-stream'): { desc: Descriptor; bytes: Buffer } {
  const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return { desc: { mediaType, digest: sha256(bytes), size: bytes.length }, bytes };
}

/** The pid of a process that has exited (pids are not reused that fast). */
export async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  const pid = child.pid;
  await once(child, 'exit');
  if (pid === undefined) throw new Error('spawn failed');
  return pid;
}

export interface TinyImage {
  manifest: Descriptor;
  manifestBytes: Buffer;
  config: Descriptor;
  configBytes: Buffer;
  layer: Descriptor;
  layerBytes: Buffer;
  /** All three, config and layer first. */
  blobs: Array<{ desc: Descriptor; bytes: Buffer }>;
}

async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = once(pack, 'end');
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mtime: new Date('2024-01-01T00:00:00Z'), mode: 0o644 }, content);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A small valid OCI image: one gzip layer holding `files`, a config, a manifest. */
export async function tinyImage(files: Record<string, string> = { 'hello.txt': 'hello\n' }): Promise<TinyImage> {
  const tarBytes = await tarOf(files);
  const layerBytes = gzipSync(tarBytes);
  const layer = blob(layerBytes, MediaType.ociLayerGzip).desc;
  const cfg: ImageConfig = {
    created: '2024-01-01T00:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/hello'] },
    rootfs: { type: 'layers', diff_ids: [sha256(tarBytes)] },
  };
  const configBytes = Buffer.from(JSON.stringify(cfg));
  const config = blob(configBytes, MediaType.ociConfig).desc;
  const m: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] };
  const manifestBytes = Buffer.from(JSON.stringify(m));
  const manifest = blob(manifestBytes, MediaType.ociManifest).desc;
  return {
    manifest,
    manifestBytes,
    config,
    configBytes,
    layer,
    layerBytes,
    blobs: [
      { desc: config, bytes: configBytes },
      { desc: layer, bytes: layerBytes },
      { desc: manifest, bytes: manifestBytes },
    ],
  };
}

export function indexOf(manifests: Descriptor[]): { desc: Descriptor; bytes: Buffer } {
  const idx: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
  return blob(JSON.stringify(idx), MediaType.ociIndex);
}

/**
 * Compiles src/store (and what it imports) to plain JS for child processes,
 * under node_modules/.cache so bare imports still resolve. Separate from dist/
 * so the test never depends on a stale or half-written build.
 */
export async function buildStoreForChildren(): Promise<{ storeModule: string; cleanup: () => Promise<void> }> {
  const out = join(REPO, 'node_modules', '.cache', `s2n-store-test-${process.pid}`);
  await mkdir(out, { recursive: true });
  await execFileP(
    process.execPath,
    [
      join(REPO, 'node_modules/typescript/bin/tsc'),
      ...['--outDir', out, '--rootDir', REPO, '--module', 'NodeNext', '--moduleResolution', 'NodeNext'],
      ...['--target', 'ES2022', '--types', 'node', '--skipLibCheck', '--noCheck'],
      join(REPO, 'src/store/store.ts'),
    ],
    { cwd: REPO },
  );
  return { storeModule: join(out, 'src/store/store.js'), cleanup: () => rm(out, { recursive: true, force: true }) };
}

/** A child process script that drives the compiled store; see the `mode` switch. */
export const CHILD_SCRIPT = `
import { readFileSync } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
const [storeModule, mode, root, ...args] = process.argv.slice(2);
const { ContentStore } = await import(storeModule);
const lockModule = await import(new URL('./lock.js', 'file://' + storeModule).href);
const store = await ContentStore.open(root);
const desc = (d, s) => ({ mediaType: 'application/octet-stream', digest: d, size: Number(s) });
switch (mode) {
  case 'open':
    break;
  case 'put': {
    // args: file digest size
    const [file, d, s] = args;
    const bytes = readFileSync(file);
    await store.withLease(async () => {
      // Small chunks so two writers interleave.
      const chunks = [];
      for (let i = 0; i < bytes.length; i += 4096) chunks.push(bytes.subarray(i, i + 4096));
      await store.put(desc(d, s), Readable.from(chunks));
    });
    break;
  }
  case 'tag': {
    // args: prefix count digest size
    const [prefix, count, d, s] = args;
    await store.withLease(async () => {
      for (let i = 0; i < Number(count); i++) await store.tag(prefix + i, { ...desc(d, s), mediaType: 'application/vnd.oci.image.manifest.v1+json' });
    });
    break;
  }
  case 'hang': {
    // Dies (SIGKILL from the test) holding a lease, the index lock and a half-written blob.
    const [d, s] = args;
    await store.withLease(async () => {
      await lockModule.acquireLock(store.indexLockPath);
      const data = new PassThrough();
      const p = store.put(desc(d, s), data);
      data.write(Buffer.alloc(1000, 1));
      setTimeout(() => process.stdout.write('ready\\n'), 100);
      await p;
    });
    break;
  }
  default:
    throw new Error('unknown mode ' + mode);
}
process.stdout.write('ok\\n');
`;

export async function writeChildScript(dir: string): Promise<string> {
  const path = join(dir, 'store-child.mjs');
  await writeFile(path, CHILD_SCRIPT);
  return path;
}

export interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function runChild(script: string, args: string[]): Promise<ChildResult> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}
