/**
 * A small runnable test image built by code from the host's static busybox
 * (Debian's busybox-static, installed by scripts/setup-host.sh --test): a
 * shell and the usual tools, an unprivileged user `app` (1000:1000, also in
 * group `extra` 2000), and files owned by it.
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ociArchive } from './archives.js';
import { buildImage, dir, file, symlink, type LayerEntry, type TestImage } from './images.js';

export const BUSYBOX = '/bin/busybox';

const APPLETS = [
  'sh', 'cat', 'echo', 'id', 'sleep', 'ls', 'touch', 'pwd', 'env', 'printenv', 'grep', 'head', 'stat', 'mkdir',
  'kill', 'tty', 'stty', 'true', 'false', 'rm', 'wc', 'hostname', 'mount', 'readlink', 'test', 'ps', 'dd',
];

export interface BusyboxImageOptions {
  /** Merged into the image config's `config`. */
  config?: Parameters<typeof buildImage>[0]['config'];
  /** Extra entries in a second layer. */
  extra?: LayerEntry[];
}

export async function busyboxImage(o: BusyboxImageOptions = {}): Promise<TestImage> {
  const base: LayerEntry[] = [
    dir('bin/'),
    file('bin/busybox', readFileSync(BUSYBOX), { mode: 0o755 }),
    ...APPLETS.map((a) => symlink(`bin/${a}`, 'busybox')),
    dir('etc/'),
    file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n'),
    file('etc/group', 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n'),
    dir('root/', { mode: 0o700 }),
    dir('home/'),
    dir('home/app/', { uid: 1000, gid: 1000 }),
    file('home/app/owned-by-app', 'hello\n', { uid: 1000, gid: 1000 }),
    dir('tmp/', { mode: 0o1777 }),
    dir('data/'),
  ];
  return buildImage({
    layers: [base, ...(o.extra ? [o.extra] : [])],
    config: { Cmd: ['sh', '-c', 'echo default-cmd'], Env: ['PATH=/bin', 'FOO=from-image'], ...o.config },
  });
}

/** Writes `img` as an oci-archive named `name` (load it with `s2n-oci load -i`). */
export async function writeImageArchive(dirPath: string, img: TestImage, name: string): Promise<string> {
  const path = join(dirPath, `${name.replace(/[^a-z0-9]+/gi, '_')}.oci.tar`);
  await writeFile(path, ociArchive([{ image: img, refName: name }]), { mode: 0o644 });
  return path;
}
