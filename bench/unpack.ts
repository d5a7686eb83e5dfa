/**
 * Cold unpack benchmark on the realistic image of the umoci differential
 * test (test/unpack/realistic-image.ts: ~120 MB, ~7500 entries, 3 gzip
 * layers): `s2n-oci unpack` into a fresh bundle, beside
 * `umoci unpack --rootless` and plain `tar -xzf` of the layers in sequence
 * (no whiteouts, no checks: the floor). As root, s2n-oci also runs as the
 * unprivileged test user (subuid mode, unpacking inside a user namespace)
 * when that user exists. Prints median time and peak RSS.
 *
 *   npm run bench:unpack -- [--runs N]
 *
 * Outputs are moved aside between runs and deleted only at the end (see bench/pull.ts).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { removeTree } from '../src/rootfs/remove.js';
import { detectIdPlan } from '../src/userns/ids.js';
import { realisticImage } from '../test/unpack/realistic-image.js';
import { compareTools, freshPaths, has, mb, measure, type Tool } from './measure.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);

const cli = join(resolve(import.meta.dirname, '..', '..'), 'dist', 'src', 'cli', 's2n-oci.cjs');
const work = process.env.S2N_BENCH_DIR ?? join(tmpdir(), 's2n-bench');
const outDir = join(work, 'unpack-out');
const trash = join(work, 'unpack-trash');
const store = join(work, 'unpack-store');
const userStore = join(work, 'unpack-store-user');
const isRoot = process.geteuid?.() === 0;

function userIds(name: string): { uid: number; gid: number } | undefined {
  try {
    const id = (f: string): number => Number(execFileSync('id', [f, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const image = await realisticImage();
  const freshPath = freshPaths(outDir, trash);
  console.error(`image ${image.layoutDir}: ${image.layers.length} layers, ${mb(image.layers.reduce((a, l) => a + l.size, 0))} gzip, ${mb(image.uncompressedBytes)} of files, ${image.entries} entries\n`);
  execFileSync(process.execPath, [cli, '--root', store, 'load', '-q', '-i', image.layoutDir]);
  const tools: Tool[] = [
    { name: `s2n-oci unpack${isRoot ? ' (root)' : ''}`, run: (i) => measure(process.execPath, [cli, '--root', store, 'unpack', image.manifestDigest, freshPath(`s2n-${i}`)]) },
  ];
  const user = isRoot ? userIds('s2n-test') : undefined;
  if (user) {
    // The user's own store and output dirs; s2n-oci unpacks inside a user namespace (subuids).
    mkdirSync(userStore, { recursive: true });
    chownSync(userStore, user.uid, user.gid);
    chownSync(outDir, user.uid, user.gid);
    const asUser = ['--reuid', String(user.uid), '--regid', String(user.gid), '--init-groups', '--'];
    execFileSync('setpriv', [...asUser, process.execPath, cli, '--root', userStore, 'load', '-q', '-i', image.layoutDir]);
    tools.push({ name: 's2n-oci unpack (user, subid)', run: (i) => measure('setpriv', [...asUser, process.execPath, cli, '--root', userStore, 'unpack', image.manifestDigest, freshPath(`s2n-user-${i}`)]) });
  }
  if (has('umoci')) {
    tools.push({ name: 'umoci unpack --rootless', run: (i) => measure('umoci', ['unpack', '--rootless', '--image', `${image.layoutDir}:latest`, freshPath(`umoci-${i}`)]) });
  } else console.error('umoci is not installed: comparing with tar only');
  tools.push({
    name: 'tar -xzf (layers in sequence)',
    run: (i) => measure('sh', ['-c', 'out="$1"; shift; mkdir -p "$out" && for l; do tar -xzf "$l" -C "$out" || exit 1; done', 'sh', freshPath(`tar-${i}`), ...image.layers.map((l) => l.path)]),
  });
  await compareTools(`cold unpack of ${mb(image.uncompressedBytes)} (${image.entries} entries, ${image.layers.length} layers)`, tools, runs, image.uncompressedBytes);
}

try {
  await main();
} finally {
  for (const d of [store, userStore]) rmSync(d, { recursive: true, force: true });
  if (isRoot) {
    rmSync(outDir, { recursive: true, force: true });
    rmSync(trash, { recursive: true, force: true });
  } else {
    // As a user, s2n-oci's trees belong to its subuids: remove them inside the user namespace.
    const { plan } = await detectIdPlan();
    for (const d of [outDir, trash]) await removeTree(d, plan.mode === 'subid' ? 'subid' : 'single', plan);
  }
}
