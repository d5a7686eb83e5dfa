/**
 * The pull demo: starts a private docker-registry on 127.0.0.1, pushes a small
 * multi-platform image built by code, then runs the real CLI against it:
 * pull, images, inspect, and a read-back with skopeo when it is installed.
 * Everything lives in a temp dir that is removed at the end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildIndex, smallImage } from '../test/helpers/images.js';
import { pushImage } from '../test/helpers/push.js';
import { startRegistry } from '../test/helpers/registry.js';

const cli = resolve(import.meta.dirname, '..', 'src', 'cli', 's2n-oci.cjs');
const work = mkdtempSync(join(tmpdir(), 's2n-demo-'));
const root = join(work, 'store');

function s2n(...args: string[]): void {
  console.log(`\n$ s2n-oci ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [cli, '--root', root, ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`s2n-oci ${args[0]} exited with ${r.status}`);
}

const reg = await startRegistry();
try {
  const amd64 = await smallImage({ platform: { os: 'linux', architecture: 'amd64' }, marker: 'hello from amd64' });
  const arm64 = await smallImage({ platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, marker: 'hello from arm64' });
  await pushImage(reg, 'demo/hello', buildIndex([amd64, arm64], 'oci'), { tags: ['1.0'] });
  console.log(`demo registry on ${reg.url} serves ${reg.host}/demo/hello:1.0 (linux/amd64 + linux/arm64)`);

  s2n('pull', `${reg.host}/demo/hello:1.0`);
  s2n('pull', '--platform', 'linux/arm64', `${reg.host}/demo/hello:1.0`);
  s2n('images');
  s2n('inspect', `${reg.host}/demo/hello:1.0`);
  try {
    const raw = execFileSync('skopeo', ['inspect', `oci:${root}:${reg.host}/demo/hello:1.0`], { encoding: 'utf8' });
    console.log(`\n$ skopeo inspect oci:STORE:${reg.host}/demo/hello:1.0   (the store is a plain OCI layout)\n${raw}`);
  } catch {
    console.log('\n(skopeo not installed: skipping the interop read-back)');
  }
} finally {
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
}
