import { describe, expect, it } from 'vitest';
import { DEFAULT_CAPABILITIES, ALL_CAPABILITIES } from '../../src/runtime-spec/capabilities.js';
import { generateSpec, type GenerateInput } from '../../src/runtime-spec/generate.js';
import { validateRuntimeConfig } from '../../src/oci/validate.js';
import type { RunOptions } from '../../src/runtime-spec/options.js';
import { DEFAULT_PROFILE, parseProfile } from '../../src/runtime-spec/profile.js';
import { ociVersionFor } from '../../src/runtime-spec/version.js';
import { image, input, rootHost, rootlessHost } from './fixtures.js';
import { caught } from './helpers.js';

/** Generate, and re-check the result with the schema (generateSpec already did; this makes the test say so). */
function gen(over: Partial<GenerateInput> = {}): ReturnType<typeof generateSpec> {
  const r = generateSpec(input(over));
  expect(() => validateRuntimeConfig(r.spec)).not.toThrow();
  return r;
}

const spec = (over: Partial<GenerateInput> = {}) => gen(over).spec;

describe('entrypoint and command (docker semantics)', () => {
  type Row = [string, string[] | null | undefined, string[] | null | undefined, string | undefined, string[] | undefined, string[] | 'EUSAGE'];
  const rows: Row[] = [
    ['Cmd only', undefined, ['sh'], undefined, undefined, ['sh']],
    ['Entrypoint + Cmd', ['/ep'], ['a'], undefined, undefined, ['/ep', 'a']],
    ['command replaces Cmd', ['/ep'], ['a'], undefined, ['b', 'c'], ['/ep', 'b', 'c']],
    ['command replaces a Cmd-only image', undefined, ['a'], undefined, ['b'], ['b']],
    ['--entrypoint replaces Entrypoint and drops Cmd', ['/ep'], ['a'], '/x', undefined, ['/x']],
    ['--entrypoint with a command', ['/ep'], ['a'], '/x', ['b'], ['/x', 'b']],
    ["--entrypoint '' with a command", ['/ep'], ['a'], '', ['b'], ['b']],
    ["--entrypoint '' alone", ['/ep'], ['a'], '', undefined, 'EUSAGE'],
    ['nothing at all', null, null, undefined, undefined, 'EUSAGE'],
    ['empty command keeps Cmd', ['/ep'], ['a'], undefined, [], ['/ep', 'a']],
    ['Entrypoint only', ['/ep', '-v'], undefined, undefined, undefined, ['/ep', '-v']],
  ];
  it.each(rows)('%s', (_name, Entrypoint, Cmd, entrypoint, command, want) => {
    const cfg: NonNullable<Parameters<typeof image>[0]> = {};
    if (Entrypoint !== undefined) cfg.Entrypoint = Entrypoint;
    if (Cmd !== undefined) cfg.Cmd = Cmd;
    const options: RunOptions = {};
    if (entrypoint !== undefined) options.entrypoint = entrypoint;
    if (command !== undefined) options.command = command;
    const run = () => generateSpec(input({ image: image(cfg), options }));
    if (want === 'EUSAGE') {
      const e = caught(run);
      expect(e.code).toBe('EUSAGE');
      expect(e.message).toBe('run example/app:1: no command specified');
    } else {
      expect(run().spec.process.args).toEqual(want);
    }
  });
});

describe('environment', () => {
  it('layers image, profile, env files, -e; fills PATH, HOSTNAME, HOME', () => {
    const profile = { ...DEFAULT_PROFILE, env: ['B=profile', 'P=profile'] };
    const s = spec({
      image: image({ Cmd: ['sh'], Env: ['A=image', 'B=image', 'C=image'] }),
      profile,
      options: { envFiles: ['C=file1\nD=file1\n', 'D=file2\nFROMCALLER\nMISSING\n'], env: ['D=cli', 'E=cli', 'X'], callerEnv: { X: 'caller', FROMCALLER: 'yes' }, hostname: 'h1', user: 'scanner' },
    });
    expect(s.process.env).toEqual([
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'A=image',
      'B=profile',
      'C=file1',
      'P=profile',
      'D=cli',
      'FROMCALLER=yes',
      'E=cli',
      'X=caller',
      'HOSTNAME=h1',
      'HOME=/home/scanner',
    ]);
  });

  it("keeps the image's PATH, HOME and HOSTNAME, and adds TERM only with a terminal", () => {
    const s = spec({ image: image({ Cmd: ['sh'], Env: ['PATH=/opt/bin', 'HOME=/data', 'HOSTNAME=fixed'] }), options: { tty: true } });
    expect(s.process.env).toEqual(['PATH=/opt/bin', 'HOME=/data', 'HOSTNAME=fixed', 'TERM=xterm']);
    expect(s.process.terminal).toBe(true);
    expect(spec().process.env.some((e) => e.startsWith('TERM='))).toBe(false);
    expect(spec({ options: { tty: true, env: ['TERM=vt100'] } }).process.env).toContain('TERM=vt100');
  });

  it('refuses a malformed -e', () => {
    expect(caught(() => generateSpec(input({ options: { env: ['=x'] } }))).code).toBe('EUSAGE');
  });
});

describe('process', () => {
  it('working directory: -w, else the image, resolved against /', () => {
    expect(spec().process.cwd).toBe('/');
    expect(spec({ image: image({ Cmd: ['sh'], WorkingDir: 'app/' }) }).process.cwd).toBe('/app');
    expect(spec({ image: image({ Cmd: ['sh'], WorkingDir: '/srv' }), options: { workdir: '/work//x/' } }).process.cwd).toBe('/work/x/');
    expect(caught(() => generateSpec(input({ options: { workdir: 'rel' } }))).message).toContain('must be an absolute path');
  });

  it('user: -u over the image User, with groups and HOME', () => {
    const s = spec({ image: image({ Cmd: ['sh'], User: 'web' }) });
    expect(s.process.user).toEqual({ uid: 33, gid: 33, additionalGids: [2000] });
    expect(s.process.env).toContain('HOME=/var/www');
    expect(spec({ image: image({ Cmd: ['sh'], User: 'web' }), options: { user: '0' } }).process.user).toEqual({ uid: 0, gid: 0 });
    const e = caught(() => generateSpec(input({ image: image({ Cmd: ['sh'], User: 'ghost' }) })));
    expect(e.message).toContain('no user "ghost" in /etc/passwd of example/app:1');
  });

  it('hostname: --hostname, else the host name with --network host, else the id', () => {
    expect(spec({ options: { hostname: 'x' } }).hostname).toBe('x');
    expect(spec().hostname).toBe('buildhost');
    expect(spec({ options: { network: 'none' } }).hostname).toBe('0123456789ab');
    expect(spec({ options: { network: 'none' }, id: undefined }).hostname).toBe('s2n-oci');
  });

  it('rlimits: 1048576 capped at the caller hard limit; --ulimit wins; rootless over the limit is refused', () => {
    expect(spec().process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', soft: 1048576, hard: 1048576 }]);
    expect(spec({ host: rootHost({ nofileHard: 20000 }) }).process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 }]);
    expect(spec({ host: rootlessHost({ nofileHard: undefined }) }).process.rlimits).toBeUndefined();
    expect(spec({ host: rootlessHost(), options: { ulimits: [{ name: 'nofile', soft: 100, hard: 200 }, { name: 'core', soft: 0, hard: 0 }] } }).process.rlimits).toEqual([
      { type: 'RLIMIT_NOFILE', soft: 100, hard: 200 },
      { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
    ]);
    const e = caught(() => generateSpec(input({ host: rootlessHost(), options: { ulimits: [{ name: 'nofile', soft: 1, hard: 30000 }] } })));
    expect(e.message).toContain('above your hard limit 20000');
  });

  it('no_new_privileges by default; the profile and the flag can turn it off', () => {
    expect(spec().process.noNewPrivileges).toBe(true);
    expect(spec({ profile: { ...DEFAULT_PROFILE, noNewPrivileges: false } }).process.noNewPrivileges).toBe(false);
    expect(spec({ profile: { ...DEFAULT_PROFILE, noNewPrivileges: false }, options: { noNewPrivileges: true } }).process.noNewPrivileges).toBe(true);
  });

  it('annotations: image labels, --label, --annotation, the stop signal and the profile', () => {
    const s = spec({
      image: image({ Cmd: ['sh'], Labels: { a: 'image', b: 'image' }, StopSignal: 'SIGQUIT' }),
      options: { labels: { b: 'label', c: 'label' }, annotations: { c: 'annotation' } },
    });
    expect(s.annotations).toEqual({ a: 'image', b: 'label', c: 'annotation', 'org.opencontainers.image.stopSignal': 'SIGQUIT', 'io.s2n-oci.profile': 'default' });
  });
});

describe('namespaces and id mappings', () => {
  const types = (s: ReturnType<typeof spec>) => s.linux.namespaces.map((n) => n.type);

  it('root: pid ipc uts mount, host network, no user namespace; cgroup only on v2', () => {
    expect(types(spec())).toEqual(['pid', 'ipc', 'uts', 'mount']);
    expect(types(spec({ host: rootHost({ cgroup: { version: 2, canManage: true, controllers: [] } }) }))).toEqual(['pid', 'ipc', 'uts', 'mount', 'cgroup']);
    expect(types(spec({ options: { network: 'none' } }))).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(spec().linux.uidMappings).toBeUndefined();
  });

  it('rootless: a user namespace with exactly the mappings the rootfs was unpacked with', () => {
    const host = rootlessHost();
    const s = spec({ host });
    expect(types(s)).toEqual(['pid', 'ipc', 'uts', 'mount', 'user']);
    expect(s.linux.uidMappings).toEqual(host.ids.uidMappings);
    expect(s.linux.gidMappings).toEqual(host.ids.gidMappings);
  });

  it("rootless in 'single' mode: only root runs; another user is refused with the subuid hint", () => {
    const single = rootlessHost({ ids: { mode: 'single', uidMappings: [{ containerID: 0, hostID: 1001, size: 1 }], gidMappings: [{ containerID: 0, hostID: 1001, size: 1 }] } });
    expect(spec({ host: single }).process.user.uid).toBe(0);
    const e = caught(() => generateSpec(input({ host: single, options: { user: 'scanner' } })));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toContain('as uid 1000 gid 1000');
    expect(e.hint).toContain('usermod --add-subuids');
    // devpts gets no gid=5 when gid 5 does not exist in the container.
    const pts = spec({ host: single }).mounts.find((m) => m.destination === '/dev/pts');
    expect(pts?.options).not.toContain('gid=5');
    expect(spec({ host: rootlessHost() }).mounts.find((m) => m.destination === '/dev/pts')?.options).toContain('gid=5');
  });

  it('rootless with runc drops supplementary groups with a warning; crun keeps them', () => {
    const r = gen({ host: rootlessHost(), options: { user: 'scanner' } });
    expect(r.spec.process.user).toEqual({ uid: 1000, gid: 1000 });
    expect(r.warnings).toEqual(['supplementary groups 33, 2000 are left out: runc cannot set them in a rootless container (crun can)']);
    const c = gen({ host: rootlessHost({ runtime: { name: 'crun', version: '1.8.1' } }), options: { user: 'scanner' } });
    expect(c.spec.process.user.additionalGids).toEqual([33, 2000]);
    expect(c.warnings).toEqual([]);
  });

  it('an inconsistent host (rootless without mappings) is an internal error', () => {
    expect(caught(() => generateSpec(input({ host: rootlessHost({ ids: { mode: 'root', uidMappings: [], gidMappings: [] } }) }))).code).toBe('EINTERNAL');
  });
});

describe('mounts', () => {
  const dests = (s: ReturnType<typeof spec>) => s.mounts.map((m) => m.destination);

  it('root: sysfs and a cgroup mount, read-only root with tmpfs at /tmp /run /var/tmp, the /etc files', () => {
    const s = spec();
    expect(s.root).toEqual({ path: '/var/lib/s2n-oci/rootfs/abc', readonly: true });
    expect(dests(s)).toEqual(['/proc', '/dev', '/dev/pts', '/dev/mqueue', '/dev/shm', '/sys', '/sys/fs/cgroup', '/tmp', '/run', '/var/tmp', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname']);
    expect(s.mounts.find((m) => m.destination === '/sys')).toEqual({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
    expect(s.mounts.find((m) => m.destination === '/etc/hosts')).toEqual({ destination: '/etc/hosts', type: 'bind', source: '/run/s2n-oci/c1/hosts', options: ['rbind', 'rprivate', 'nosuid', 'noexec', 'nodev', 'ro'] });
    expect(s.linux.maskedPaths).toContain('/proc/kcore');
    expect(s.linux.readonlyPaths).toContain('/proc/sys');
  });

  it('rootless: /sys is the host one bound read-only (own sysfs with --network none); a cgroup2 mount only on cgroup v2', () => {
    const s = spec({ host: rootlessHost() });
    expect(s.mounts.find((m) => m.destination === '/sys')).toEqual({ destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
    expect(dests(s)).not.toContain('/sys/fs/cgroup');
    const v2 = spec({ host: rootlessHost({ cgroup: { version: 2, canManage: false, controllers: [] } }) });
    expect(v2.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.type).toBe('cgroup');
    // With its own network namespace it may mount a sysfs (so /sys/class/net is its own).
    const none = spec({ host: rootlessHost(), options: { network: 'none' } });
    expect(none.mounts.find((m) => m.destination === '/sys')).toEqual({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
  });

  it('user mounts come last, replace defaults at the same path, and are refused twice or over /proc', () => {
    const s = spec({
      options: {
        readOnly: false,
        mounts: [
          { type: 'bind', source: '/host/data', target: '/data', readOnly: true, options: [] },
          { type: 'bind', source: '/host/out', target: '/out', readOnly: false, options: ['rslave'] },
          { type: 'tmpfs', target: '/tmp', size: 1024 * 1024, options: ['noexec'] },
          { type: 'bind', source: '/host/hosts', target: '/etc/hosts', readOnly: true, options: [] },
        ],
      },
    });
    expect(s.root.readonly).toBe(false);
    expect(dests(s).slice(-6)).toEqual(['/etc/resolv.conf', '/etc/hostname', '/data', '/out', '/tmp', '/etc/hosts']);
    expect(dests(s).filter((d) => d === '/tmp' || d === '/etc/hosts')).toHaveLength(2);
    expect(s.mounts.find((m) => m.destination === '/data')?.options).toEqual(['rbind', 'rprivate', 'ro']);
    expect(s.mounts.find((m) => m.destination === '/out')?.options).toEqual(['rbind', 'rslave', 'rw']);
    expect(s.mounts.find((m) => m.destination === '/tmp')?.options).toEqual(['nosuid', 'nodev', 'noexec', 'rw', 'mode=1777', 'size=1048576']);
    // A writable root makes the /etc files writable too.
    expect(s.mounts.find((m) => m.destination === '/etc/resolv.conf')?.options).toContain('rw');

    const twice = caught(() => generateSpec(input({ options: { mounts: [{ type: 'tmpfs', target: '/x', options: [] }, { type: 'bind', source: '/a', target: '/x/', readOnly: false, options: [] }] } })));
    expect(twice.message).toBe('mount /x: two mounts for the same container path');
    expect(caught(() => generateSpec(input({ options: { mounts: [{ type: 'tmpfs', target: '/proc', options: [] }] } }))).message).toContain('cannot be replaced');
  });
});

describe('capabilities', () => {
  const caps = (s: ReturnType<typeof spec>) => s.process.capabilities;

  it("podman's default set in bounding, effective and permitted for root; nothing inheritable or ambient", () => {
    const c = caps(spec());
    expect(c.bounding).toEqual([...DEFAULT_CAPABILITIES].sort((a, b) => ALL_CAPABILITIES.indexOf(a) - ALL_CAPABILITIES.indexOf(b)));
    expect(c.bounding).toHaveLength(11);
    expect(c.effective).toEqual(c.bounding);
    expect(c.permitted).toEqual(c.bounding);
    expect(c.inheritable).toEqual([]);
    expect(c.ambient).toEqual([]);
  });

  it('a non-root user gets an empty effective and permitted set (bounding kept), like docker', () => {
    const c = caps(spec({ options: { user: 'scanner' } }));
    expect(c.bounding).toHaveLength(11);
    expect(c.effective).toEqual([]);
    expect(c.permitted).toEqual([]);
  });

  it.each<[string, RunOptions, string[]]>([
    ['add one', { capAdd: ['net_raw'] }, [...DEFAULT_CAPABILITIES, 'CAP_NET_RAW']],
    ['drop one', { capDrop: ['CAP_CHOWN', 'kill'] }, DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_CHOWN' && c !== 'CAP_KILL')],
    ['drop ALL', { capDrop: ['ALL'] }, []],
    ['drop ALL, add one', { capDrop: ['all'], capAdd: ['NET_BIND_SERVICE'] }, ['CAP_NET_BIND_SERVICE']],
    ['add ALL', { capAdd: ['ALL'] }, [...ALL_CAPABILITIES]],
    ['add ALL, drop one', { capAdd: ['ALL'], capDrop: ['SYS_ADMIN'] }, ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_ADMIN')],
    ['add wins over drop of the same', { capAdd: ['KILL'], capDrop: ['KILL'] }, [...DEFAULT_CAPABILITIES]],
  ])('%s', (_n, options, want) => {
    expect(new Set(caps(spec({ options })).bounding)).toEqual(new Set(want));
  });

  it('the command line adjusts what the profile left', () => {
    const prod = { ...DEFAULT_PROFILE, name: 'prod', capDrop: ['ALL'] };
    expect(caps(spec({ profile: prod })).bounding).toEqual([]);
    expect(caps(spec({ profile: prod, options: { capAdd: ['NET_RAW'] } })).bounding).toEqual(['CAP_NET_RAW']);
  });

  it('refuses unknown capabilities', () => {
    const e = caught(() => generateSpec(input({ options: { capAdd: ['FLY'] } })));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toBe('parse --cap-add "FLY": unknown capability');
  });
});

describe('seccomp and --privileged', () => {
  it('a denylist profile, narrowed by the capabilities the container holds', () => {
    const s = spec().linux.seccomp;
    expect(s?.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(s?.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const denied = s?.syscalls?.[0]?.names ?? [];
    for (const n of ['kexec_load', 'open_by_handle_at', 'init_module', 'keyctl', 'mount', 'bpf']) expect(denied).toContain(n);
    expect(s?.syscalls?.[0]).toMatchObject({ action: 'SCMP_ACT_ERRNO', errnoRet: 1 });
    const admin = spec({ options: { capAdd: ['SYS_ADMIN'] } }).linux.seccomp?.syscalls?.[0]?.names ?? [];
    expect(admin).not.toContain('mount');
    expect(admin).toContain('kexec_load');
    expect(spec({ image: image({ Cmd: ['sh'] }, 'arm64') }).linux.seccomp?.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(spec({ image: image({ Cmd: ['sh'] }, 'riscv64') }).linux.seccomp?.architectures).toBeUndefined();
  });

  it('seccomp=false (option or profile) drops it', () => {
    expect(spec({ options: { seccomp: false } }).linux.seccomp).toBeUndefined();
    expect(spec({ profile: { ...DEFAULT_PROFILE, seccomp: false } }).linux.seccomp).toBeUndefined();
  });

  it('--privileged as root: every capability, no seccomp or masked paths, writable /sys, all devices', () => {
    const s = spec({ options: { privileged: true } });
    expect(s.process.capabilities.bounding).toEqual([...ALL_CAPABILITIES]);
    expect(s.linux.seccomp).toBeUndefined();
    expect(s.linux.maskedPaths).toBeUndefined();
    expect(s.mounts.find((m) => m.destination === '/sys')?.options).toContain('rw');
    expect(s.linux.resources?.devices).toEqual([{ allow: true, access: 'rwm' }]);
  });

  it('--privileged rootless is refused', () => {
    const e = caught(() => generateSpec(input({ host: rootlessHost(), options: { privileged: true } })));
    expect(e.code).toBe('EUSAGE');
    expect(e.message).toBe('run --privileged: refused for rootless containers');
  });
});

describe('resources', () => {
  const limits: RunOptions = { memory: 512 * 1024 * 1024, cpus: 1.5, pidsLimit: 100 };

  it('root with the controllers: memory, cpu quota and pids set, no warnings', () => {
    const r = gen({ options: limits });
    expect(r.spec.linux.resources).toEqual({
      devices: [{ allow: false, access: 'rwm' }],
      memory: { limit: 536870912 },
      cpu: { quota: 150000, period: 100000 },
      pids: { limit: 100 },
    });
    expect(r.warnings).toEqual([]);
  });

  it('a user who cannot manage cgroups gets one warning per limit, never an error', () => {
    const r = gen({ host: rootlessHost(), options: limits });
    expect(r.spec.linux.resources).toBeUndefined();
    expect(r.warnings).toEqual([
      '--memory cannot be enforced: this user cannot manage cgroups (cgroup v1 or no delegation); run as root or enable cgroup v2 delegation',
      '--cpus cannot be enforced: this user cannot manage cgroups (cgroup v1 or no delegation); run as root or enable cgroup v2 delegation',
      '--pids-limit cannot be enforced: this user cannot manage cgroups (cgroup v1 or no delegation); run as root or enable cgroup v2 delegation',
    ]);
  });

  it('a missing controller drops only its limit; profile limits are named as such', () => {
    const host = rootlessHost({ cgroup: { version: 2, canManage: true, controllers: ['memory', 'pids'] } });
    const profile = { ...DEFAULT_PROFILE, name: 'prod', memory: 1024 ** 3, pidsLimit: 256, cpus: 2 };
    const r = gen({ host, profile, options: { pidsLimit: 64 } });
    expect(r.spec.linux.resources).toEqual({ memory: { limit: 1024 ** 3 }, pids: { limit: 64 } });
    expect(r.warnings).toEqual([
      `the prod profile's cpu limit cannot be enforced: the cpu cgroup controller is not available to this user; enable it (cgroup v2 delegation of "cpu")`,
    ]);
  });

  it('rootless limits on a delegated v2 host put the container in its own cgroup under the delegated parent', () => {
    const parent = '/user.slice/user-1000.slice/user@1000.service/app.slice';
    const host = rootlessHost({ cgroup: { version: 2, canManage: true, controllers: ['cpu', 'memory', 'pids'], parent } });
    const id = 'a'.repeat(64);
    const limited = gen({ host, id, options: { memory: 64 * 1024 ** 2 } }).spec.linux;
    expect(limited.cgroupsPath).toBe(`${parent}/s2n-oci-${id}`);
    expect(limited.resources?.memory).toEqual({ limit: 64 * 1024 ** 2 });
    // No limits: the runtime's default placement, as before.
    expect(gen({ host, id }).spec.linux.cgroupsPath).toBeUndefined();
    // Root: the runtime places it.
    const root = rootHost({ cgroup: { version: 2, canManage: true, controllers: ['cpu', 'memory', 'pids'] } });
    expect(gen({ host: root, id, options: { memory: 64 * 1024 ** 2 } }).spec.linux.cgroupsPath).toBeUndefined();
  });

  it('pids-limit 0 or -1 means unlimited', () => {
    expect(gen({ options: { pidsLimit: -1 } }).spec.linux.resources).toEqual({ devices: [{ allow: false, access: 'rwm' }] });
    const profile = { ...DEFAULT_PROFILE, pidsLimit: 256 };
    expect(gen({ profile, options: { pidsLimit: 0 } }).spec.linux.resources?.pids).toBeUndefined();
  });

  it('crun on cgroup v2 gets no device rule unless CAP_MKNOD is granted', () => {
    const host = rootHost({ runtime: { name: 'crun', version: '1.8.1' }, cgroup: { version: 2, canManage: true, controllers: [] } });
    expect(gen({ host }).spec.linux.resources).toBeUndefined();
    expect(gen({ host, options: { capAdd: ['MKNOD'] } }).spec.linux.resources?.devices).toEqual([{ allow: false, access: 'rwm' }]);
  });
});

describe('ociVersion per runtime', () => {
  it.each([
    [{ name: 'runc' as const, version: '1.1.5' }, '1.0.2-dev'],
    [{ name: 'runc' as const, version: '1.0.0-rc95' }, '1.0.2-dev'],
    [{ name: 'runc' as const, version: '1.2.4' }, '1.2.0'],
    [{ name: 'runc' as const, version: '2.0.0' }, '1.2.0'],
    [{ name: 'crun' as const, version: '1.8.1' }, '1.0.0'],
  ])('%j → %s', (runtime, want) => {
    expect(ociVersionFor(runtime)).toBe(want);
    expect(spec({ host: rootHost({ runtime }) }).ociVersion).toBe(want);
  });
});

describe('validation', () => {
  it('every combination above passes the runtime-spec schema (spot check of extremes)', () => {
    const prod = parseProfile({ variant: 'prod', readOnlyRoot: true, capDrop: ['ALL'], nonRootUser: '1000:1000', pidsLimit: 256, memory: '1g', tmpfs: ['/tmp'] }, 'prod');
    for (const host of [rootHost(), rootlessHost(), rootlessHost({ runtime: { name: 'crun', version: '1.8.1' }, cgroup: { version: 2, canManage: true, controllers: ['cpu', 'memory', 'pids'] } })]) {
      for (const profile of [DEFAULT_PROFILE, prod]) {
        gen({ host, profile, options: { tty: true, cpus: 0.5, memory: 64 * 1024 * 1024, ulimits: [{ name: 'nproc', soft: 10, hard: 20 }], network: 'none' } });
      }
    }
  });

  it('a config the schema refuses is an internal error, not handed to the runtime', () => {
    // A rlimit name outside RLIMIT_[A-Z]+ cannot come from parseUlimit; forcing one proves the check runs.
    const e = caught(() => generateSpec(input({ options: { ulimits: [{ name: 'no-file', soft: 1, hard: 1 }] } })));
    expect(e.code).toBe('EINTERNAL');
    expect(e.message).toContain('validate runtime config');
  });
});

describe('purity', () => {
  function deepFreeze<T>(x: T): T {
    if (typeof x === 'object' && x !== null && !Object.isFrozen(x)) {
      Object.freeze(x);
      for (const v of Object.values(x)) deepFreeze(v);
    }
    return x;
  }

  it('does not modify its input and gives the same config for the same input', () => {
    const make = (): GenerateInput =>
      deepFreeze(
        input({
          host: rootlessHost({ runtime: { name: 'crun', version: '1.8.1' } }),
          image: image({ Cmd: ['sh'], Env: ['A=1'], Labels: { l: 'v' } }),
          options: { user: 'scanner', env: ['B=2'], mounts: [{ type: 'bind', source: '/a', target: '/b', readOnly: true, options: [] }], capAdd: ['NET_RAW'], memory: 64 * 1024 * 1024 },
          profile: { ...DEFAULT_PROFILE, env: ['P=1'] },
        }),
      );
    const a = generateSpec(make());
    const b = generateSpec(make());
    expect(a).toEqual(b);
    // The spec shares no arrays with the input: a caller may edit it (e.g. add cgroupsPath) safely.
    const i = make();
    const s = generateSpec(i).spec;
    expect(s.linux.uidMappings).not.toBe(i.host.ids.uidMappings);
    s.process.env.push('X=1');
    expect(generateSpec(i).spec.process.env).not.toContain('X=1');
  });
});
