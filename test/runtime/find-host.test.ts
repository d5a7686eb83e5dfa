import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { S2nError } from '../../src/errors.js';
import { findRuntime, parseVersion, runtimeKind } from '../../src/runtime/find.js';
import { cgroupLayout, checkRuntimeUsable, chooseRuntime, ownCgroup2Path, parseMountinfo, probeCgroup } from '../../src/runtime/host.js';
import { tempDir } from '../helpers/cli.js';

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const V2 = `30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n`;
const V1 = HYBRID.split('\n').filter((l) => !l.includes('cgroup2')).join('\n');

/** A fake runtime binary: a shell script answering --version (and features). */
function fakeRuntime(dir: string, name: string, version: string, features?: string): string {
  mkdirSync(dir, { recursive: true });
  const p = join(dir, name);
  const feat = features === undefined ? 'echo "unknown command features" >&2; exit 1' : `echo '${features}'`;
  writeFileSync(p, `#!/bin/sh\ncase "$1" in --version) printf '${name} version ${version}\\nspec: 1.0.2\\n';; features) ${feat};; esac\n`);
  chmodSync(p, 0o755);
  return p;
}

describe('runtime discovery', () => {
  it('parses --version of runc and crun', () => {
    expect(parseVersion('runc version 1.1.5+ds1\ncommit: x\nspec: 1.0.2-dev\ngo: go1.19.8\n')).toEqual({ version: '1.1.5+ds1', specVersion: '1.0.2-dev' });
    expect(parseVersion('crun version 1.8.1\ncommit: f8a0\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD')).toEqual({ version: '1.8.1', specVersion: '1.0.0' });
    expect(parseVersion('garbage')).toBeUndefined();
    expect(runtimeKind('/opt/crun-1.8/bin/crun')).toBe('crun');
    expect(runtimeKind('/usr/sbin/runc')).toBe('runc');
  });

  it('prefers crun then runc on PATH; --runtime and S2N_OCI_RUNTIME choose explicitly', async () => {
    const d = tempDir();
    const bin = join(d, 'bin');
    fakeRuntime(bin, 'runc', '1.1.5', '{"ociVersionMin":"1.0.0","ociVersionMax":"1.0.2-dev"}');
    const env = { PATH: bin };
    const a = await findRuntime({ env, features: true });
    expect(a).toMatchObject({ name: 'runc', version: '1.1.5', explicit: false, features: { ociVersionMax: '1.0.2-dev' } });
    fakeRuntime(bin, 'crun', '1.8.1');
    const b = await findRuntime({ env, features: true });
    expect(b).toMatchObject({ name: 'crun', version: '1.8.1', explicit: false });
    expect(b.features).toBeUndefined();
    expect(await findRuntime({ env: { ...env, S2N_OCI_RUNTIME: 'runc' } })).toMatchObject({ name: 'runc', explicit: true });
    expect(await findRuntime({ env, name: join(bin, 'runc') })).toMatchObject({ name: 'runc', path: join(bin, 'runc'), explicit: true });
    await expect(findRuntime({ env, name: 'nonesuch' })).rejects.toThrow(/find runtime nonesuch: not found on PATH/);
    await expect(findRuntime({ env: { PATH: join(d, 'empty') } })).rejects.toMatchObject({ code: 'ENOTFOUND', hint: expect.stringMatching(/apt-get install crun runc/) });
  });
});

describe('runtime version cache', () => {
  it('asks --version once per binary and again when the binary changes', async () => {
    const d = tempDir();
    const bin = join(d, 'bin');
    const calls = join(d, 'calls');
    mkdirSync(bin);
    const write = (v: string): void => {
      writeFileSync(join(bin, 'runc'), `#!/bin/sh\necho "$1" >> ${calls}\nprintf 'runc version ${v}\\nspec: 1.0.2\\n'\n`);
      chmodSync(join(bin, 'runc'), 0o755);
    };
    write('1.1.5');
    const o = { env: { PATH: bin }, cacheDir: join(d, 'state') };
    expect((await findRuntime(o)).version).toBe('1.1.5');
    expect((await findRuntime(o)).version).toBe('1.1.5');
    expect(readFileSync(calls, 'utf8')).toBe('--version\n');
    write('1.1.12');
    expect((await findRuntime(o)).version).toBe('1.1.12');
    expect(readFileSync(calls, 'utf8')).toBe('--version\n--version\n');
  });
});

describe('cgroup detection', () => {
  it('tells v1, v2 and hybrid apart from mountinfo', () => {
    expect(cgroupLayout(parseMountinfo(HYBRID))).toMatchObject({ version: 'hybrid', unifiedMount: '/sys/fs/cgroup/unified', v1Controllers: ['cpu', 'memory', 'pids'] });
    expect(cgroupLayout(parseMountinfo(V2))).toMatchObject({ version: 2, unifiedMount: '/sys/fs/cgroup' });
    expect(cgroupLayout(parseMountinfo(V1))).toMatchObject({ version: 1 });
    expect(ownCgroup2Path('12:pids:/x\n0::/user.slice/user-1000.slice/session-2.scope\n')).toBe('/user.slice/user-1000.slice/session-2.scope');
  });

  it('on a v2 host, rootless limits need our parent cgroup delegated (the container cgroup goes beside ours)', async () => {
    const d = tempDir();
    const parent = '/user.slice/user-1000.slice/user@1000.service/app.slice';
    const own = `${parent}/app-term.scope`;
    const at = (p: string): string => join(d, 'sys/fs/cgroup', p);
    mkdirSync(at(own), { recursive: true });
    writeFileSync(join(at(parent), 'cgroup.controllers'), 'cpu memory pids\n');
    writeFileSync(join(at(parent), 'cgroup.subtree_control'), '');
    writeFileSync(join(at(own), 'cgroup.controllers'), 'io\n');
    writeFileSync(join(d, 'mountinfo'), V2);
    writeFileSync(join(d, 'cgroup'), `0::${own}\n`);
    const paths = { mountinfo: join(d, 'mountinfo'), selfCgroup: join(d, 'cgroup'), fsRoot: d };
    // We own the fixture, so it is "delegated": the parent's controllers are what a container can use.
    expect(await probeCgroup(1000, paths)).toMatchObject({ version: 2, ownPath: own, controllers: ['cpu', 'memory', 'pids'], canManage: true, parent });
    // Root uses its own cgroup's controllers and lets the runtime place the container.
    const root = await probeCgroup(0, paths);
    expect(root).toMatchObject({ canManage: true, controllers: ['io'] });
    expect(root.parent).toBeUndefined();
    writeFileSync(join(at(parent), 'cgroup.controllers'), '\n');
    const none = await probeCgroup(1000, paths);
    expect(none.canManage).toBe(false);
    expect(none.parent).toBeUndefined();
    expect(none.problem?.message).toContain(`cgroup ${parent} is not delegated`);
    expect(none.problem?.fix).toMatch(/systemd-run --user --scope -p Delegate=yes/);
    // In the root cgroup there is no parent to use.
    writeFileSync(join(d, 'cgroup'), '0::/\n');
    writeFileSync(join(d, 'sys/fs/cgroup/cgroup.controllers'), 'cpu memory pids\n');
    expect((await probeCgroup(1000, paths)).canManage).toBe(false);
    writeFileSync(join(d, 'mountinfo'), HYBRID);
    expect(await probeCgroup(1000, paths)).toMatchObject({ version: 'hybrid', canManage: false });
    expect(await probeCgroup(0, paths)).toMatchObject({ version: 'hybrid', canManage: true, controllers: ['cpu', 'memory', 'pids'] });
  });

  it('refuses crun on a hybrid host with the reason and the fix', () => {
    let err: unknown;
    try {
      checkRuntimeUsable({ name: 'crun', path: '/usr/bin/crun' }, { cgroup: { version: 'hybrid' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(S2nError);
    expect((err as S2nError).message).toMatch(/crun does not support cgroup v1\+v2 hybrid hosts/);
    expect((err as S2nError).hint).toMatch(/--runtime runc.*systemd\.unified_cgroup_hierarchy=1/);
    expect(() => checkRuntimeUsable({ name: 'crun', path: '/usr/bin/crun' }, { cgroup: { version: 2 } })).not.toThrow();
    expect(() => checkRuntimeUsable({ name: 'runc', path: '/usr/bin/runc' }, { cgroup: { version: 'hybrid' } })).not.toThrow();
  });

  it('falls back from crun to runc on a hybrid host unless crun was chosen', async () => {
    const d = tempDir();
    const bin = join(d, 'bin');
    fakeRuntime(bin, 'crun', '1.8.1');
    fakeRuntime(bin, 'runc', '1.1.5');
    const notices: string[] = [];
    const rt = await chooseRuntime({ env: { PATH: bin }, cgroup: { version: 'hybrid' }, notice: (l) => notices.push(l) });
    expect(rt.name).toBe('runc');
    expect(notices).toEqual([expect.stringMatching(/^crun cannot run on this host \(cgroup v1\+v2 hybrid\); using runc 1\.1\.5 instead$/)]);
    await expect(chooseRuntime({ env: { PATH: bin }, name: 'crun', cgroup: { version: 'hybrid' } })).rejects.toThrow(/crun does not support cgroup v1\+v2 hybrid/);
    expect((await chooseRuntime({ env: { PATH: bin }, cgroup: { version: 2 } })).name).toBe('crun');
    // Only crun installed: the refusal itself, not a "not found".
    const only = join(d, 'only');
    fakeRuntime(only, 'crun', '1.8.1');
    await expect(chooseRuntime({ env: { PATH: only }, cgroup: { version: 'hybrid' } })).rejects.toThrow(/crun does not support/);
  });
});
