/**
 * A tiny runnable rootfs (Debian's static busybox plus applet symlinks) and
 * a hand-written runtime config for it, so the driver is tested against real
 * runc/crun without depending on the spec generator. No vitest import: the
 * benchmark uses it too.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BUSYBOX = '/bin/busybox';
export const HAVE_BUSYBOX = existsSync(BUSYBOX);

const APPLETS = ['sh', 'tty', 'stty', 'sleep', 'cat', 'echo', 'true', 'false', 'ls', 'id', 'kill', 'env', 'touch', 'mkdir', 'test', 'pwd'];

/** A world-readable rootfs under `parent` (mode 0755 all the way, so the rootless user can use it). */
export function buildBusyboxRootfs(parent = mkdtempSync(join(tmpdir(), 's2n-rt-'))): string {
  chmodSync(parent, 0o755);
  const root = join(parent, 'rootfs');
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc', 'noexec']) mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(root, 'bin', a));
  writeFileSync(join(root, 'noexec', 'script'), '#!/bin/sh\necho never\n', { mode: 0o644 });
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  return root;
}

export interface ConfigOptions {
  rootfs: string;
  args: string[];
  terminal?: boolean;
  /** Host uid/gid of the invoking user when rootless (maps 0 -> it, 1.. -> 100000..). */
  rootless?: { uid: number; gid: number };
  env?: string[];
  consoleSize?: { height: number; width: number };
}

/** A minimal runtime-spec 1.0 config, like `runc spec [--rootless]` with a read-only shared root. */
export function busyboxConfig(o: ConfigOptions): Record<string, unknown> {
  const ns = ['pid', 'ipc', 'uts', 'mount', ...(o.rootless ? ['user'] : [])].map((type) => ({ type }));
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const map = (host: number): Array<{ containerID: number; hostID: number; size: number }> => [
    { containerID: 0, hostID: host, size: 1 },
    { containerID: 1, hostID: 100000, size: 65536 },
  ];
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: o.terminal ?? false,
      ...(o.consoleSize ? { consoleSize: o.consoleSize } : {}),
      user: { uid: 0, gid: 0 },
      args: o.args,
      env: o.env ?? ['PATH=/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      noNewPrivileges: true,
    },
    root: { path: o.rootfs, readonly: true },
    hostname: 's2n-test',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', ...(o.rootless ? [] : ['gid=5'])],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
      o.rootless
        ? { destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] }
        : { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      ...(o.rootless ? { uidMappings: map(o.rootless.uid), gidMappings: map(o.rootless.gid) } : {}),
      namespaces: ns,
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
