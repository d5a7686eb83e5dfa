/**
 * Differential test on a realistic image (host trees re-tarred, ~120 MB,
 * ~7500 entries, a non-root USER owning files, hard links, setuid, whiteouts
 * and an opaque dir; see realistic-image.ts): `s2n-oci unpack` gives the
 * same tree as `umoci unpack` as root, and as an unprivileged user the same
 * tree as `umoci unpack --rootless` with ownership that maps back to the
 * image's (umoci --rootless cannot chown, so its owners are all the user).
 */
import { execFile } from 'node:child_process';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { CAN_RUN_AS_USER, IS_ROOT, cliSandbox, runCli, tempDir, testUser } from '../helpers/cli.js';
import { realisticImage, type RealisticImage } from './realistic-image.js';
import { snapshot, type Node } from './util.js';

const execFileP = promisify(execFile);

const hasUmoci = await execFileP('umoci', ['--version']).then(
  () => true,
  () => false,
);

/** Paths grouped by inode: the hard-link structure of a tree. */
async function linkGroups(root: string, tree: Record<string, Node>): Promise<string[][]> {
  const by = new Map<number, string[]>();
  for (const [p, n] of Object.entries(tree)) {
    if (n.type !== 'file') continue;
    const st = await lstat(join(root, p));
    if (st.nlink > 1) by.set(st.ino, [...(by.get(st.ino) ?? []), p]);
  }
  return [...by.values()].map((g) => g.sort()).sort();
}

function without(tree: Record<string, Node>, keys: Array<keyof Node>): Record<string, Partial<Node>> {
  const out: Record<string, Partial<Node>> = {};
  for (const [p, n] of Object.entries(tree)) {
    const c: Partial<Node> = { ...n };
    for (const k of keys) delete c[k];
    out[p] = c;
  }
  return out;
}

let image: RealisticImage;
/** umoci's tree as root: the reference for paths and ownership. */
let reference: Record<string, Node>;
let referenceLinks: string[][];

describe.skipIf(!hasUmoci || !IS_ROOT)('differential on a realistic image: s2n-oci unpack vs umoci unpack', () => {
  beforeAll(async () => {
    image = await realisticImage();
    const out = join(tempDir('s2n-umoci-ref-'), 'bundle');
    await execFileP('umoci', ['unpack', '--image', `${image.layoutDir}:latest`, out]);
    reference = await snapshot(join(out, 'rootfs'));
    referenceLinks = await linkGroups(join(out, 'rootfs'), reference);
  }, 120_000);

  it('the image is what the test claims: ≥ 50 MB, thousands of files, a user-owned home, whiteouts applied', () => {
    expect(image.uncompressedBytes).toBeGreaterThan(50e6);
    expect(Object.keys(reference).length).toBeGreaterThan(5000);
    expect(reference['home/app/data/d01/f1.txt']).toMatchObject({ uid: 1000, gid: 1000 });
    expect(reference['home/app/bin-suid']).toMatchObject({ mode: 0o4755, uid: 1000 });
    expect(reference['home/app/data/d03/f3.txt']).toBeUndefined();
    expect(reference['home/app/data/d39']).toBeUndefined();
    expect(Object.keys(reference).filter((p) => p.includes('.wh.'))).toEqual([]);
    expect(referenceLinks.length).toBeGreaterThanOrEqual(3);
  });

  it('as root: the same paths, types, modes, sizes, contents, link targets, owners and hard links', async () => {
    const sb = cliSandbox();
    expect((await runCli(['load', '-q', '-i', image.layoutDir])).code).toBe(0);
    const out = join(sb.dir, 'ours');
    const r = await runCli(['unpack', image.manifestDigest, out]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const ours = await snapshot(join(out, 'rootfs'));
    expect(ours).toEqual(reference);
    expect(await linkGroups(join(out, 'rootfs'), ours)).toEqual(referenceLinks);
  }, 60_000);

  it.skipIf(!CAN_RUN_AS_USER)('as an unprivileged user: the same tree as umoci --rootless, owners mapped through the subuid range', async () => {
    const u = testUser()!;
    const sb = cliSandbox();
    expect((await runCli(['load', '-q', '-i', image.layoutDir], { as: 'user' })).code).toBe(0);
    const out = join(sb.dir, 'ours');
    const r = await runCli(['unpack', image.manifestDigest, out], { as: 'user' });
    expect(r.stderr).not.toMatch(/Error|warning/);
    expect(r.code).toBe(0);
    const theirs = join(sb.dir, 'umoci');
    await execFileP('setpriv', ['--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', 'umoci', 'unpack', '--rootless', '--image', `${image.layoutDir}:latest`, theirs]);
    const ours = await snapshot(join(out, 'rootfs'));
    const rootless = await snapshot(join(theirs, 'rootfs'));
    expect(without(ours, ['uid', 'gid'])).toEqual(without(rootless, ['uid', 'gid']));
    // Host ids back to container ids: the user is container root, 100000 + k is container k + 1.
    const toContainer = (id: number, self: number): number => (id === self ? 0 : id >= 100000 && id < 165536 ? id - 100000 + 1 : -1);
    const mapped: Record<string, Node> = {};
    for (const [p, n] of Object.entries(ours)) mapped[p] = { ...n, uid: toContainer(n.uid, u.uid), gid: toContainer(n.gid, u.gid) };
    expect(mapped).toEqual(reference);
    expect(await linkGroups(join(out, 'rootfs'), ours)).toEqual(referenceLinks);
  }, 60_000);
});
