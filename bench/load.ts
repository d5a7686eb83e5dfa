/**
 * Load benchmark: one `docker save`-style archive (default 6 × 15 MB layers,
 * made with skopeo from a generated OCI layout) loaded into an empty store by
 * `s2n-oci load`, beside `skopeo copy docker-archive:… oci:…` and
 * `podman load` when they are installed. Prints median time and peak RSS.
 *
 *   npm run bench:load -- [--runs N] [--layers N] [--layer-mb N]
 *
 * Outputs are moved aside between runs and deleted at the end (see bench/pull.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildLargeImageOnDisk } from '../test/helpers/images.js';
import { compareTools, freshPaths, has, layeredImageArgs, mb, measure, type Tool } from './measure.js';

const { runs, layers, layerMb, layerSize } = layeredImageArgs();

const cli = join(resolve(import.meta.dirname, '..', '..'), 'dist', 'src', 'cli', 's2n-oci.cjs');
const work = process.env.S2N_BENCH_DIR ?? join(tmpdir(), 's2n-bench');
const imageDir = join(work, `image-${layers}x${layerMb}`);
const archive = join(work, `docker-archive-${layers}x${layerMb}.tar`);
const outDir = join(work, 'load-out');
const trash = join(work, 'load-trash');

const freshPath = freshPaths(outDir, trash);

async function main(): Promise<void> {
  if (!has('skopeo')) throw new Error('skopeo is needed to write the docker-archive: apt-get install skopeo');
  await buildLargeImageOnDisk(imageDir, { layers, layerSize });
  if (!existsSync(archive)) {
    execFileSync('skopeo', ['copy', '-q', `oci:${imageDir}:latest`, `docker-archive:${archive}:bench/image:latest`]);
  }
  const size = statSync(archive).size;
  console.error(`archive ${archive}: ${mb(size)}\n`);

  const tools: Tool[] = [
    { name: 's2n-oci load', run: (i) => measure(process.execPath, [cli, '--root', freshPath(`s2n-${i}`), 'load', '-i', archive]) },
    { name: 'skopeo copy', run: (i) => measure('skopeo', ['copy', '-q', `docker-archive:${archive}`, `oci:${freshPath(`skopeo-${i}`)}:latest`]) },
  ];
  if (has('podman') && has('podman', ['info'])) {
    tools.push({ name: 'podman load', run: (i) => measure('podman', ['--root', freshPath(`podman-${i}`), '--runroot', freshPath(`podman-run-${i}`), 'load', '-q', '-i', archive]) });
  } else {
    console.error('podman is not installed or does not work here: comparing with skopeo only');
  }
  await compareTools(`load of a ${mb(size)} docker-archive (${layers} layers)`, tools, runs, size);
}

try {
  await main();
} finally {
  rmSync(outDir, { recursive: true, force: true });
  rmSync(trash, { recursive: true, force: true });
}
