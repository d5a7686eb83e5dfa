/**
 * Archives crossing between podman and s2n-oci, both ways: what podman saves,
 * s2n-oci loads; what s2n-oci saves, podman loads with the same layers.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ociArchive } from '../helpers/archives.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { smallImage } from '../helpers/images.js';

const run = promisify(execFile);

function podmanWorks(): boolean {
  try {
    execFileSync('podman', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** podman with a private, throwaway store, so the test neither sees nor leaves images elsewhere. */
function podman(dir: string): (...args: string[]) => Promise<string> {
  return async (...args) =>
    (await run('podman', ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs', ...args], { timeout: 60_000 })).stdout;
}

// `scripts/setup-host.sh --test` installs podman; on a host without it this interop check cannot run.
describe.skipIf(!podmanWorks())('podman interop', () => {
  for (const format of ['docker-archive', 'oci-archive'] as const) {
    it(`podman save --format ${format} → s2n-oci load keeps the layers; s2n-oci save → podman load`, async () => {
      const img = await smallImage({ marker: `podman-${format}` });
      const seed = join(tempDir(), 'seed.tar');
      writeFileSync(seed, ociArchive([{ image: img, annotations: { 'org.opencontainers.image.ref.name': 'localhost/interop:1' } }]));
      const pm = podman(tempDir('s2n-podman-'));
      await pm('load', '-q', '-i', seed);

      const fromPodman = join(tempDir(), 'podman.tar');
      await pm('save', '--format', format, '-o', fromPodman, 'localhost/interop:1');
      const root = join(tempDir(), 'store');
      const l = await runCli(['load', '-i', fromPodman], { root });
      expect(l.stderr).not.toContain('Error');
      expect(l.code).toBe(0);
      expect(l.stdout).toContain('localhost/interop:1');
      const insp = JSON.parse((await runCli(['inspect', 'localhost/interop:1'], { root })).stdout) as Array<{ DiffIds: string[] }>;
      expect(insp[0]?.DiffIds).toEqual(img.layers.map((x) => x.diffId));

      const ours = join(tempDir(), 'ours.tar');
      const s = await runCli(['save', '--format', format, '-o', ours, 'localhost/interop:1'], { root });
      expect(s.code, s.stderr).toBe(0);
      const pm2 = podman(tempDir('s2n-podman-'));
      const loaded = await pm2('load', '-i', ours);
      expect(loaded).toMatch(/Loaded image/);
      const diffIds = JSON.parse(await pm2('image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'localhost/interop:1')) as string[];
      expect(diffIds).toEqual(img.layers.map((x) => x.diffId));
    });
  }
});
