/**
 * `s2n-oci run -it` through a real pseudo-terminal (node-pty on the test
 * side, as a user's terminal would be): the container sees a tty, gets the
 * window size and its changes, and Ctrl-C reaches it.
 */
import { chmodSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { busyboxImage, writeImageArchive } from '../helpers/busybox-image.js';
import { runTerminalScenario, TERMINAL_SCRIPT } from '../helpers/pty.js';
import { CAN_RUN_AS_USER, CLI_PATH, cliSandbox, IS_ROOT, runCli, testUser } from '../helpers/cli.js';

const BOX = 'localhost/s2n-test/tty-box:1';
const SHIM = 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"';

const MODES = [
  { label: 'runc as root', runtime: 'runc', user: false, skip: !IS_ROOT },
  { label: 'crun as the unprivileged test user (cgroup2 shim)', runtime: 'crun', user: true, skip: !CAN_RUN_AS_USER },
] as const;

for (const m of MODES) {
  describe.skipIf(m.skip)(`run -it with ${m.label}`, () => {
    it('gives the container a terminal of our size, forwards a resize and Ctrl-C', async () => {
      const sb = cliSandbox();
      chmodSync(sb.dir, 0o755);
      const archive = await writeImageArchive(sb.dir, await busyboxImage(), BOX);
      const load = await runCli(['load', '-i', archive], { sandbox: sb, ...(m.user ? { as: 'user' as const } : {}) });
      expect(load.code, load.stderr).toBe(0);

      let argv = [process.execPath, CLI_PATH, 'run', '--runtime', m.runtime, '-it', BOX, 'sh', '-c', TERMINAL_SCRIPT];
      const u = testUser();
      if (m.user && u) argv = ['setpriv', '--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', ...argv];
      if (m.runtime === 'crun') argv = ['unshare', '-m', 'sh', '-c', SHIM, 'sh', ...argv];
      const env = { ...sb.env, TERM: 'xterm', ...(m.user && u ? { USER: u.name } : {}) };
      const r = await runTerminalScenario(argv, { cwd: sb.dir, env });
      expect(r.code, r.out).toBe(7);
      expect(r.lines, r.out).toContain('24 80');
      expect(r.out).toMatch(/40 100/);
      expect(r.out).toContain('got INT');
      const ps = await runCli(['ps', '-a'], { sandbox: sb, ...(m.user ? { as: 'user' as const } : {}) });
      expect(ps.stdout.trim().split('\n')).toHaveLength(1);
    });
  });
}
