import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CAN_RUN_AS_USER, IS_ROOT, runCli, testUser } from '../helpers/cli.js';

interface Report {
  user: { uid: number; rootless: boolean };
  runtimes: Array<{ name: string; version: string; usable: boolean; features?: { ociVersionMax?: string }; problem?: { message: string; fix: string } }>;
  defaultRuntime?: string;
  userNamespaces: { allowed: boolean; newuidmap?: string };
  subuid: Array<{ start: number; count: number }>;
  subgid: Array<{ start: number; count: number }>;
  cgroup: { version: 1 | 2 | 'hybrid'; canManage: boolean; controllers: string[] };
  store: string;
  state: string;
  problems: Array<{ message: string; fix: string }>;
}

const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
const HYBRID = / - cgroup2 /.test(mountinfo) && / - cgroup /.test(mountinfo);

async function info(opts: Parameters<typeof runCli>[1] = {}): Promise<Report> {
  const r = await runCli(['info', '--json'], opts);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

describe('s2n-oci info', () => {
  it('prints the host facts for people', async () => {
    const r = await runCli(['info']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^runtimes:$/m);
    expect(r.stdout).toMatch(/^ {2}runc \S+ \/\S+runc.* features: oci 1\.0\.0\.\.\S+/m);
    expect(r.stdout).toMatch(/^user namespaces: +allowed/m);
    expect(r.stdout).toMatch(/^store: +\S+\/root$/m);
    expect(r.stdout).toMatch(/^problems:/m);
  });

  it.skipIf(!IS_ROOT)('as root: runtimes with versions and features, state in /run, the store root', async () => {
    const r = await info({ env: { S2N_OCI_STATE: undefined } });
    expect(r.user).toMatchObject({ uid: 0, rootless: false });
    const runc = r.runtimes.find((x) => x.name === 'runc');
    expect(runc?.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(runc?.features?.ociVersionMax).toMatch(/^1\./);
    expect(r.state).toBe('/run/s2n-oci');
    expect(r.store).toMatch(/\/root$/);
    expect(r.subuid).toEqual([]);
  });

  it.skipIf(!IS_ROOT || !HYBRID)('explains that crun cannot run on this hybrid cgroup host, and picks runc', async () => {
    const r = await info();
    expect(r.cgroup.version).toBe('hybrid');
    const crun = r.runtimes.find((x) => x.name === 'crun');
    expect(crun).toMatchObject({ usable: false });
    expect(crun?.problem?.message).toMatch(/crun does not support cgroup v1\+v2 hybrid hosts/);
    expect(crun?.problem?.fix).toMatch(/--runtime runc.*systemd\.unified_cgroup_hierarchy=1/);
    expect(r.defaultRuntime).toBe('runc');
    const human = await runCli(['info']);
    expect(human.stdout).toMatch(/^ {2}crun .*\(unusable: .*crun does not support cgroup v1\+v2 hybrid hosts/m);
    expect(human.stdout).toMatch(/^ {2}runc .*\[default\]/m);
    // Asked for explicitly, crun is the default and its problem is listed with the fix.
    const forced = await info({ env: { S2N_OCI_RUNTIME: 'crun' } });
    expect(forced.defaultRuntime).toBe('crun');
    expect(forced.problems.map((p) => p.fix)).toContain(crun?.problem?.fix);
  });

  it.skipIf(!IS_ROOT)('inside a pure cgroup2 view, crun is usable and preferred', async () => {
    const r = await info({ cgroup2: true });
    expect(r.cgroup.version).toBe(2);
    expect(r.runtimes.find((x) => x.name === 'crun')?.usable).toBe(true);
    expect(r.defaultRuntime).toBe('crun');
  });

  it.skipIf(!CAN_RUN_AS_USER)('as the unprivileged user: rootless, subordinate ranges, state under XDG_RUNTIME_DIR, limits explained', async () => {
    const r = await info({ as: 'user' });
    expect(r.user).toMatchObject({ uid: testUser()!.uid, rootless: true });
    expect(r.subuid).toEqual([{ start: 100000, count: 65536 }]);
    expect(r.subgid).toEqual([{ start: 100000, count: 65536 }]);
    expect(r.userNamespaces.allowed).toBe(true);
    expect(r.userNamespaces.newuidmap).toMatch(/newuidmap$/);
    expect(r.state).toMatch(/\/run\/s2n-oci$/);
    if (!r.cgroup.canManage) expect(r.problems.some((p) => /resource limits|not delegated/.test(p.message) && p.fix !== '')).toBe(true);
    const noXdg = await info({ as: 'user', env: { XDG_RUNTIME_DIR: undefined, S2N_OCI_STATE: undefined } });
    expect(noXdg.state).toMatch(new RegExp(`s2n-oci-${testUser()!.uid}$`));
    expect(noXdg.problems).toContainEqual({ message: expect.stringMatching(/XDG_RUNTIME_DIR is not set/), fix: `export XDG_RUNTIME_DIR=/run/user/${testUser()!.uid}` });
  });
});
