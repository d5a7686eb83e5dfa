/** runInUserNamespace maps exactly as the plan says (checked from inside), and the worker refuses a namespace that does not. */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { WORKER_ENTRY, workerScript } from '../../src/rootfs/build.js';
import { parseIdMap } from '../../src/userns/ids.js';
import { runInUserNamespace, userNamespaceArgv } from '../../src/userns/run-in-userns.js';
import type { IdPlan } from '../../src/userns/types.js';
import { CAN_RUN_AS_USER, IS_ROOT, REPO_ROOT, testUser } from '../helpers/cli.js';
import { withTempDir } from '../helpers/tmp.js';

const execFileP = promisify(execFile);

const subid = (uid: number, gid: number): IdPlan => ({
  mode: 'subid',
  uidMappings: [
    { containerID: 0, hostID: uid, size: 1 },
    { containerID: 1, hostID: 100000, size: 65536 },
  ],
  gidMappings: [
    { containerID: 0, hostID: gid, size: 1 },
    { containerID: 1, hostID: 100000, size: 65536 },
  ],
});

describe('userNamespaceArgv', () => {
  it('builds the unshare line from the plan, and refuses plans it cannot set up', () => {
    expect(userNamespaceArgv(subid(1001, 1002), { euid: 1001, egid: 1002 })).toEqual([
      'unshare',
      '--user',
      '--map-root-user',
      '--map-users=100000,1,65536',
      '--map-groups=100000,1,65536',
      '--',
    ]);
    const single: IdPlan = { mode: 'single', uidMappings: [{ containerID: 0, hostID: 1001, size: 1 }], gidMappings: [{ containerID: 0, hostID: 1001, size: 1 }] };
    expect(userNamespaceArgv(single, { euid: 1001, egid: 1001 })).toEqual(['unshare', '--user', '--map-root-user', '--']);
    expect(userNamespaceArgv({ mode: 'root', uidMappings: [], gidMappings: [] }, { euid: 0, egid: 0 })).toEqual([]);
    expect(() => userNamespaceArgv({ mode: 'root', uidMappings: [], gidMappings: [] }, { euid: 5, egid: 5 })).toThrow(/not 0/);
    expect(() => userNamespaceArgv(subid(1001, 1001), { euid: 2000, egid: 1001 })).toThrow(/own id 2000/);
  });
});

describe.skipIf(!CAN_RUN_AS_USER)('runInUserNamespace as an unprivileged user', () => {
  it('gives the child exactly the planned uid and gid maps', async () => {
    const u = testUser()!;
    const plan = subid(u.uid, u.gid);
    const script = `
      const { runInUserNamespace } = await import(${JSON.stringify(join(REPO_ROOT, 'dist/src/userns/run-in-userns.js'))});
      const r = await runInUserNamespace(${JSON.stringify(plan)}, 'sh', ['-c', 'cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u']);
      process.stdout.write(JSON.stringify(r));`;
    const { stdout } = await execFileP('setpriv', ['--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', process.execPath, '--input-type=module', '-e', script]);
    const r = JSON.parse(stdout) as { code: number; stdout: string };
    expect(r.code).toBe(0);
    const [uidMap = '', gidMap = '', id = ''] = r.stdout.split('--\n');
    expect(parseIdMap(uidMap)).toEqual(plan.uidMappings);
    expect(parseIdMap(gidMap)).toEqual(plan.gidMappings);
    expect(id.trim()).toBe('0');
  });
});

describe('unpack worker', () => {
  it('starts as the installed command (bundle and code cache) once the CLI is built', () => {
    expect(workerScript()).toMatch(/dist\/src\/cli\/s2n-oci\.cjs$/);
  });
});

describe.skipIf(!IS_ROOT)('unpack worker in a user namespace', () => {
  it('refuses to write when the namespace does not map ids as planned', async () => {
    await withTempDir(async (d) => {
      await mkdir(join(d, 'rootfs'));
      const req = { rootfs: join(d, 'rootfs'), layers: [], ownership: 'real', uidMappings: subid(1001, 1001).uidMappings, gidMappings: subid(1001, 1001).gidMappings };
      // As root there is no namespace: /proc/self/uid_map is the identity map, not the plan.
      const out = await runInUserNamespace({ mode: 'root', uidMappings: [], gidMappings: [] }, process.execPath, [workerScript()], {
        input: JSON.stringify(req),
        env: { ...process.env, ...WORKER_ENTRY },
      });
      expect(out.code).toBe(1);
      expect(JSON.parse(out.stdout.trim().split('\n').pop() ?? '{}')).toMatchObject({ type: 'error', error: { message: expect.stringMatching(/uid_map is not the planned mapping/) } });
    });
  });
});
