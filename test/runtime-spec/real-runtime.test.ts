/**
 * The generated config in front of the real runtimes: a busybox rootfs run
 * with runc as root, with crun inside a pure-cgroup2 mount namespace, and
 * rootless with runc as the unprivileged test user. Proves runc 1.1 and
 * crun 1.8 accept what the schema accepts (mount options, seccomp names,
 * rlimits, ociVersion). Needs root; skipped otherwise.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSpec, type GenerateResult } from '../../src/runtime-spec/generate.js';
import type { HostFacts } from '../../src/runtime-spec/host-facts.js';
import { parseTmpfs, parseUlimit, parseVolume, type RunOptions } from '../../src/runtime-spec/options.js';
import { parseProfile, type Profile } from '../../src/runtime-spec/profile.js';
import { IS_ROOT, tempDir, testUser } from '../helpers/cli.js';
import { GROUP, PASSWD, image, input, rootHost, rootlessHost } from './fixtures.js';

const has = (bin: string): boolean => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const BUSYBOX = '/bin/busybox';
const CAN = IS_ROOT && existsSync(BUSYBOX);
const APPLETS = ['sh', 'true', 'echo', 'cat', 'id', 'touch', 'ls', 'grep', 'hostname'];

/** A bundle dir (mode 0755 so the test user can reach it) with a busybox rootfs and the /etc files. */
function bundle(): { dir: string; rootfs: string; files: { hosts: string; resolvConf: string; hostname: string } } {
  const dir = tempDir('s2n-spec-real-');
  chmodSync(dir, 0o755);
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'dev', 'sys', 'tmp', 'run', 'var/tmp', 'home/scanner']) mkdirSync(join(rootfs, d), { recursive: true });
  // As in real images: runc 1.1 gives a tmpfs the mode of the directory it covers, not mode=.
  for (const d of ['tmp', 'var/tmp']) chmodSync(join(rootfs, d), 0o1777);
  copyFileSync(BUSYBOX, join(rootfs, 'bin/busybox'));
  chmodSync(join(rootfs, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc/passwd'), PASSWD);
  writeFileSync(join(rootfs, 'etc/group'), GROUP);
  for (const f of ['hosts', 'resolv.conf', 'hostname']) writeFileSync(join(rootfs, 'etc', f), '');
  const files = { hosts: join(dir, 'hosts'), resolvConf: join(dir, 'resolv.conf'), hostname: join(dir, 'hostname') };
  writeFileSync(files.hosts, '127.0.0.1 localhost\n');
  writeFileSync(files.resolvConf, 'nameserver 127.0.0.1\n');
  writeFileSync(files.hostname, 'probe\n');
  return { dir, rootfs, files };
}

/** The probe: identity, capabilities, limits, and whether the root and /tmp are writable. */
const PROBE = [
  'echo uid=$(id -u) gid=$(id -g)',
  'grep CapEff /proc/self/status',
  'grep NoNewPrivs /proc/self/status',
  'grep Seccomp: /proc/self/status',
  'touch /probe 2>/dev/null && echo root=rw || echo root=ro',
  'touch /tmp/probe && echo tmp=rw',
  'echo host=$(hostname)',
  'cat /etc/resolv.conf',
].join('; ');

function runIn(host: HostFacts, options: RunOptions, profile?: Profile): GenerateResult & { dir: string } {
  const b = bundle();
  const { spec, warnings } = generateSpec(
    input({
      image: image({ Entrypoint: ['/bin/sh', '-c'], Cmd: [PROBE] }),
      options: { hostname: 'probe', ...options },
      host,
      rootfs: b.rootfs,
      etc: { passwd: PASSWD, group: GROUP },
      files: b.files,
      ...(profile !== undefined ? { profile } : {}),
    }),
  );
  writeFileSync(join(b.dir, 'config.json'), JSON.stringify(spec, null, 2));
  return { spec, warnings, dir: b.dir };
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What the driver passes: raising RLIMIT_NOFILE above it needs CAP_SYS_RESOURCE, which root in a container may lack. */
const hardNofile = (): number => Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim());

function rootlessFor(u: { uid: number; gid: number }, runtime: 'runc' | 'crun'): HostFacts {
  return rootlessHost({
    uid: u.uid,
    gid: u.gid,
    runtime: { name: runtime, version: runtime === 'runc' ? '1.1.5' : '1.8.1' },
    ids: {
      mode: 'subid',
      uidMappings: [{ containerID: 0, hostID: u.uid, size: 1 }, { containerID: 1, hostID: 100000, size: 65536 }],
      gidMappings: [{ containerID: 0, hostID: u.gid, size: 1 }, { containerID: 1, hostID: 100000, size: 65536 }],
    },
    nofileHard: hardNofile(),
  });
}

function runAsUser(u: { uid: number; gid: number }, runtime: string, runtimeDir: string, dir: string): ReturnType<typeof run> {
  return run('setpriv', ['--reuid', String(u.uid), '--regid', String(u.gid), '--clear-groups', '--', runtime, '--root', join(runtimeDir, runtime), 'run', '--bundle', dir, id()], {
    XDG_RUNTIME_DIR: runtimeDir,
    HOME: runtimeDir,
  });
}

const id = (): string => `s2n-spec-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

describe.skipIf(!CAN || !has('runc'))('runc accepts the generated config (root)', () => {
  it('runs the default profile: read-only root, tmpfs /tmp, default caps, seccomp, nnp', () => {
    const { dir } = runIn(rootHost({ nofileHard: hardNofile() }), {});
    const state = tempDir('s2n-runc-state-');
    const r = run('runc', ['--root', state, 'run', '--bundle', dir, id()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('uid=0 gid=0');
    expect(r.stdout).toContain('CapEff:\t00000000800405fb'); // podman's 11 default capabilities
    expect(r.stdout).toContain('NoNewPrivs:\t1');
    expect(r.stdout).toContain('Seccomp:\t2');
    expect(r.stdout).toContain('root=ro');
    expect(r.stdout).toContain('tmp=rw');
    expect(r.stdout).toContain('host=probe');
    expect(r.stdout).toContain('nameserver 127.0.0.1');
  });

  it('runs the prod profile as a non-root user with no capabilities and limits applied', () => {
    const prod = parseProfile({ readOnlyRoot: true, capDrop: ['ALL'], nonRootUser: '1000:1000', pidsLimit: 256, memory: '1g', tmpfs: ['/tmp'] }, 'prod');
    const { dir, spec } = runIn(rootHost({ nofileHard: hardNofile() }), { ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }] }, prod);
    expect(spec.linux.resources?.pids).toEqual({ limit: 256 });
    const state = tempDir('s2n-runc-state-');
    const r = run('runc', ['--root', state, 'run', '--bundle', dir, id()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('uid=1000 gid=1000');
    expect(r.stdout).toContain('CapEff:\t0000000000000000');
    expect(r.stdout).toContain('root=ro');
  });
  it('honours -v ro/rw, --tmpfs with size, --ulimit, --cap-add and a writable root', () => {
    const host = tempDir('s2n-spec-vol-');
    mkdirSync(join(host, 'in'));
    mkdirSync(join(host, 'out'));
    writeFileSync(join(host, 'in', 'data.txt'), 'from host\n');
    const script = [
      'cat /in/data.txt',
      'touch /in/x 2>/dev/null && echo in=rw || echo in=ro',
      'echo result > /out/r.txt && echo out=rw',
      'grep " /cache " /proc/mounts',
      'ulimit -n',
      'grep CapBnd /proc/self/status',
      'touch /probe && echo root=rw',
    ].join('; ');
    const { dir } = runIn(rootHost({ nofileHard: hardNofile() }), {
      command: [script],
      readOnly: false,
      capAdd: ['NET_RAW'],
      ulimits: [parseUlimit('nofile=512:1024')],
      mounts: [parseVolume(`${host}/in:/in:ro`, '/'), parseVolume(`${host}/out:/out`, '/'), parseTmpfs('/cache:size=1m,mode=700')],
    });
    const r = run('runc', ['--root', tempDir('s2n-runc-state-'), 'run', '--bundle', dir, id()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('from host');
    expect(r.stdout).toContain('in=ro');
    expect(r.stdout).toContain('out=rw');
    expect(readFileSync(join(host, 'out', 'r.txt'), 'utf8')).toBe('result\n');
    expect(r.stdout).toMatch(/tmpfs \/cache tmpfs rw,nosuid,nodev,relatime,size=1024k,mode=700/);
    expect(r.stdout).toContain('\n512\n');
    expect(r.stdout).toContain('CapBnd:\t00000000800425fb'); // the defaults plus CAP_NET_RAW (bit 13)
    expect(r.stdout).toContain('root=rw');
  });
});

describe.skipIf(!CAN || !has('crun') || !has('unshare'))('crun accepts the generated config (root, pure cgroup2 view)', () => {
  it('runs the default profile with a cgroup namespace', () => {
    // The shim's cgroup2 mount has no controllers enabled (they are bound to v1 here): what the driver would report.
    const host = rootHost({ nofileHard: hardNofile(), runtime: { name: 'crun', version: '1.8.1' }, cgroup: { version: 2, canManage: true, controllers: [] } });
    const { dir, spec, warnings } = runIn(host, { memory: 64 * 1024 * 1024, pidsLimit: 100 });
    expect(spec.linux.namespaces.map((n) => n.type)).toContain('cgroup');
    expect(spec.linux.resources).toBeUndefined();
    expect(warnings).toHaveLength(2);
    const state = tempDir('s2n-crun-state-');
    const script = 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec crun --root "$1" run --bundle "$2" "$3"';
    const r = run('unshare', ['-m', 'sh', '-c', script, 'sh', state, dir, id()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('uid=0 gid=0');
    expect(r.stdout).toContain('Seccomp:\t2');
    expect(r.stdout).toContain('root=ro');
    expect(r.stdout).toContain('tmp=rw');
  });
});

const user = IS_ROOT ? testUser() : undefined;

describe.skipIf(!CAN || !has('runc') || user === undefined || !has('setpriv'))('runc accepts the rootless config (as the test user)', () => {
  it('runs in a user namespace with the subuid mappings and a bound /sys', () => {
    const u = user!;
    const host = rootlessFor(u, 'runc');
    const { dir, spec } = runIn(host, { user: 'scanner' });
    expect(spec.linux.namespaces.map((n) => n.type)).toContain('user');
    const runtimeDir = tempDir('s2n-runc-xdg-');
    chownSync(runtimeDir, u.uid, u.gid);
    chownSync(dir, u.uid, u.gid);
    const r = runAsUser(u, 'runc', runtimeDir, dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('uid=1000 gid=1000');
    expect(r.stdout).toContain('root=ro');
    expect(r.stdout).toContain('tmp=rw');
  });

  it('with --network none: only loopback, and a sysfs of its own', () => {
    const u = user!;
    const { dir, spec } = runIn(rootlessFor(u, 'runc'), { network: 'none', command: ['ls /sys/class/net; grep -c : /proc/net/dev'] });
    expect(spec.mounts.find((m) => m.destination === '/sys')?.type).toBe('sysfs');
    const runtimeDir = tempDir('s2n-runc-xdg-');
    chownSync(runtimeDir, u.uid, u.gid);
    chownSync(dir, u.uid, u.gid);
    const r = runAsUser(u, 'runc', runtimeDir, dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // /proc/net/dev: two header lines have no colon; one interface line, lo.
    expect(r.stdout).toBe('lo\n1\n');
  });

  it.skipIf(!has('crun') || !has('unshare')).each(['host', 'none'] as const)(
    'crun runs it too with --network %s: a cgroup namespace and the supplementary groups (pure cgroup2 view)',
    (network) => {
      const u = user!;
      const host = { ...rootlessFor(u, 'crun'), cgroup: { version: 2 as const, canManage: false, controllers: [] } };
      const { dir, spec, warnings } = runIn(host, { user: 'scanner', network, command: [PROBE + '; echo groups=$(id -G); echo net=$(ls /sys/class/net)'], pidsLimit: 50 });
      expect(spec.process.user.additionalGids).toEqual([33, 2000]);
      expect(warnings).toEqual([expect.stringContaining('--pids-limit cannot be enforced')]);
      const runtimeDir = tempDir('s2n-crun-xdg-');
      chownSync(runtimeDir, u.uid, u.gid);
      chownSync(dir, u.uid, u.gid);
      const script = 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec setpriv --reuid "$1" --regid "$2" --clear-groups -- crun --root "$3" run --bundle "$4" "$5"';
      const r = run('unshare', ['-m', 'sh', '-c', script, 'sh', String(u.uid), String(u.gid), join(runtimeDir, 'crun'), dir, id()], { XDG_RUNTIME_DIR: runtimeDir, HOME: runtimeDir });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('uid=1000 gid=1000');
      expect(r.stdout).toContain('groups=1000 33 2000');
      expect(r.stdout).toContain('root=ro');
      expect(r.stdout).toContain('tmp=rw');
      const net = /^net=(.*)$/m.exec(r.stdout)?.[1]?.split(' ');
      if (network === 'none') expect(net).toEqual(['lo']);
      else expect(net?.length).toBeGreaterThan(1); // the host's interfaces besides lo, through the bound /sys
    },
  );
});
