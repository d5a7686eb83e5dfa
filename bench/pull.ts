/**
 * Cold pull benchmark: a multi-layer image (default 6 × 15 MB, incompressible)
 * served by a real docker-registry on 127.0.0.1, pulled into an empty store by
 * s2n-oci and, when installed, by `skopeo copy docker://… oci:…`. Prints
 * median wall time and peak RSS of each over several runs.
 *
 *   npm run bench -- [--runs N] [--layers N] [--layer-mb N]
 *
 * Old outputs are moved aside and deleted only at the end: on some disks
 * (ext4 without a journal) writing right after deleting a similar tree is
 * several times slower, which would punish whichever tool runs second.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildLargeImageOnDisk } from '../test/helpers/images.js';
import { pushImage } from '../test/helpers/push.js';
import { startRegistry } from '../test/helpers/registry.js';
import { compareTools, freshPaths, has, layeredImageArgs, mb, measure, type Tool } from './measure.js';

const { runs, layers, layerMb, layerSize } = layeredImageArgs();

const repoRoot = resolve(import.meta.dirname, '..', '..');
const cli = join(repoRoot, 'dist', 'src', 'cli', 's2n-oci.cjs');
const work = join(process.env.S2N_BENCH_DIR ?? join(tmpdir(), 's2n-bench'));
const imageDir = join(work, `image-${layers}x${layerMb}`);
const outDir = join(work, 'out');
const trash = join(work, 'trash');

const freshPath = freshPaths(outDir, trash);

async function main(): Promise<void> {
  console.error(`building a ${layers}-layer image of ${mb(layers * layerSize)} in ${imageDir} (reused between runs)`);
  const image = await buildLargeImageOnDisk(imageDir, { layers, layerSize });
  const reg = await startRegistry();
  try {
    await pushImage(reg, 'bench/image', image, { tags: ['latest'] });
    const ref = `${reg.host}/bench/image:latest`;
    const total = image.layers.reduce((a, l) => a + l.size, 0);
    console.error(`pushed ${ref}: ${mb(total)} compressed\n`);

    const tools: Tool[] = [
      {
        name: 's2n-oci pull',
        run: (i) => measure(process.execPath, [cli, '--root', freshPath(`s2n-${i}`), 'pull', '-q', ref]),
      },
    ];
    if (has('skopeo')) {
      tools.push({
        name: 'skopeo copy',
        run: (i) => measure('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${freshPath(`skopeo-${i}`)}:latest`]),
      });
    } else {
      console.error('skopeo is not installed: measuring s2n-oci alone (apt-get install skopeo to compare)');
    }

    await compareTools(`cold pull of ${mb(total)} in ${layers} layers`, tools, runs, total);
  } finally {
    await reg.stop();
    rmSync(outDir, { recursive: true, force: true });
    rmSync(trash, { recursive: true, force: true });
  }
}

await main();
