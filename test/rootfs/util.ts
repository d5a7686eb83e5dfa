/** Shared by the rootfs tests: a store holding a test image, and a driver running the built cache as another user. */
import { execFile } from 'node:child_process';
import { chown } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ContentStore } from '../../src/store/store.js';
import { findImage, type StoredImage } from '../../src/store/find.js';
import { REPO_ROOT, testUser } from '../helpers/cli.js';
import { buildImage, dir, file, hardlink, symlink, type BuildImageOptions, type TestImage } from '../helpers/images.js';

const execFileP = promisify(execFile);

export const LAYERS = [
  [
    dir('etc'),
    file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n'),
    dir('home/app', { uid: 1000, gid: 1000, mode: 0o750 }),
    file('home/app/data', 'data', { uid: 1000, gid: 1000, mode: 0o640 }),
    hardlink('home/app/data2', 'home/app/data'),
    symlink('home/app/link', '/etc/passwd'),
    dir('ro', { mode: 0o555 }),
    file('ro/f', 'f', { mode: 0o444 }),
  ],
];

export async function putImage(store: ContentStore, image: TestImage, name: string): Promise<StoredImage> {
  await store.withLease(async () => {
    for (const [d, b] of image.blobs) await store.putBytes({ mediaType: 'application/octet-stream', digest: d, size: b.length }, b);
    await store.putBytes(image.descriptor, image.manifestBytes);
    await store.tag(name, image.descriptor);
  });
  return findImage(store, name);
}

export async function storeWith(root: string, opts: Partial<BuildImageOptions> = {}, name = 'docker.io/test/rootfs:1'): Promise<{ store: ContentStore; image: StoredImage; test: TestImage }> {
  const store = await ContentStore.open(root);
  const test = await buildImage({ layers: LAYERS, ...opts });
  return { store, image: await putImage(store, test, name), test };
}

const DRIVER = `
const [storeRoot, action, arg] = process.argv.slice(1);
const dist = ${JSON.stringify(join(REPO_ROOT, 'dist', 'src'))};
const { ContentStore } = await import(dist + '/store/store.js');
const { findImage } = await import(dist + '/store/find.js');
const { RootfsCache } = await import(dist + '/rootfs/cache.js');
const { detectIdPlan } = await import(dist + '/userns/ids.js');
const store = await ContentStore.open(storeRoot);
const cache = new RootfsCache(store);
const { plan } = await detectIdPlan();
let out;
if (action === 'ensure') {
  const image = await findImage(store, arg);
  out = await cache.ensure(image, { plan });
} else if (action === 'remove') {
  out = { removed: await cache.remove(arg) };
} else if (action === 'prune') {
  out = await cache.prune(new Set(JSON.parse(arg)));
}
process.stdout.write(JSON.stringify(out));
`;

/** Runs a RootfsCache action (built code) in a child process, as TEST_USER when `asUser`. */
export async function drive<T>(storeRoot: string, action: 'ensure' | 'remove' | 'prune', arg: string, asUser: boolean): Promise<T> {
  const node = [process.execPath, '--input-type=module', '-e', DRIVER, storeRoot, action, arg];
  const u = testUser();
  const argv = asUser && u ? ['setpriv', '--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', ...node] : node;
  const { stdout } = await execFileP(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp' }, maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as T;
}

/** Gives `dir` to TEST_USER (the store root of a rootless test). */
export async function giveToUser(path: string): Promise<void> {
  const u = testUser();
  if (u) await chown(path, u.uid, u.gid);
}

