/**
 * Detached containers and the commands around them (ps, logs, stop, kill,
 * rm), with real runtimes, as root and as the unprivileged test user. The
 * containers are started by test/runtime/drive.ts until `s2n-oci run` exists.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { CAN_RUN_AS_USER, cliSandbox, IS_ROOT, REPO_ROOT, runCli, testUser, type CliOptions } from '../helpers/cli.js';
import { removeDir } from '../helpers/tmp.js';
import { buildBusyboxRootfs, busyboxConfig, HAVE_BUSYBOX } from '../runtime/fixture.js';

const DRIVE = join(REPO_ROOT, 'dist', 'test', 'runtime', 'drive.js');

let parent: string;
let rootfs: string;
beforeAll(() => {
  if (!HAVE_BUSYBOX) return;
  parent = mkdtempSync(join(tmpdir(), 's2n-ctr-e2e-'));
  rootfs = buildBusyboxRootfs(parent);
});
afterAll(async () => {
  if (parent) await removeDir(parent);
});

const MODES = [
  { label: 'root, runc', runtime: 'runc', user: false },
  { label: 's2n-test, runc', runtime: 'runc', user: true },
  { label: 's2n-test, crun (cgroup2 shim)', runtime: 'crun', user: true },
] as const;

for (const m of MODES) {
  describe.skipIf(!IS_ROOT || !HAVE_BUSYBOX || (m.user && !CAN_RUN_AS_USER))(`detached containers: ${m.label}`, () => {
    const opts = (extra: CliOptions = {}): CliOptions => ({
      ...(m.user ? { as: 'user' as const } : {}),
      ...(m.runtime === 'crun' ? { cgroup2: true } : {}),
      env: m.user ? {} : { S2N_OCI_STATE: join(cliSandbox().dir, 'state') },
      timeoutMs: 30_000,
      ...extra,
    });
    const cli = (args: string[]) => runCli(args, opts());
    const config = (args: string[]): string => {
      const u = testUser();
      const dir = mkdtempSync(join(parent, 'cfg-'));
      chmodSync(dir, 0o755);
      const f = join(dir, 'config.json');
      writeFileSync(f, JSON.stringify(busyboxConfig({ rootfs, args, ...(m.user && u ? { rootless: { uid: u.uid, gid: u.gid } } : {}) })), { mode: 0o644 });
      return f;
    };
    const start = (name: string, args: string[]) => runCli(['--config', config(args), '--runtime', m.runtime, '--name', name, '-d'], opts({ entry: DRIVE }));
    const stateDir = (): string => (m.user ? join(cliSandbox().env.XDG_RUNTIME_DIR!, 's2n-oci') : join(cliSandbox().dir, 'state'));
    async function until(f: () => Promise<boolean>, ms = 10_000): Promise<void> {
      const deadline = Date.now() + ms;
      while (!(await f())) {
        if (Date.now() > deadline) throw new Error('condition not reached');
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    /** Removes whatever a failing test left running (after the test, before its sandbox goes). */
    function reapLeftovers(): void {
      cliSandbox();
      onTestFinished(async () => {
        const ids = (await cli(['ps', '-a', '-q'])).stdout.split('\n').filter(Boolean);
        if (ids.length > 0) await cli(['rm', '-f', ...ids]);
      });
    }
    beforeEach(reapLeftovers);

    it('runs detached, shows in ps, keeps logs, records the exit code, stops and removes', async () => {
      const web = await start('web', ['sh', '-c', 'echo hello from web; echo to stderr >&2; trap "echo stopping; exit 0" TERM; while :; do sleep 0.1; done']);
      expect(web.code, web.stderr).toBe(0);
      const id = web.stdout.trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      const quick = await start('quick', ['sh', '-c', 'echo done; exit 3']);
      expect(quick.code).toBe(0);

      const ps = await cli(['ps']);
      expect(ps.code).toBe(0);
      expect(ps.stdout).toMatch(new RegExp(`^${id.slice(0, 12)}\\s.*\\bUp\\s+web$`, 'm'));
      await until(async () => /Exited \(3\)\s+quick$/m.test((await cli(['ps', '-a'])).stdout));
      expect((await cli(['ps'])).stdout).not.toMatch(/quick/);
      const json = JSON.parse((await cli(['ps', '-a', '--json'])).stdout) as Array<{ name: string; status: string; exitCode?: number; runtime: string }>;
      expect(json.map((c) => [c.name, c.status, c.exitCode, c.runtime]).sort()).toEqual([
        ['quick', 'exited', 3, m.runtime],
        ['web', 'running', undefined, m.runtime],
      ]);

      await until(async () => (await cli(['logs', 'web'])).stdout.includes('hello from web'));
      const logs = await cli(['logs', id.slice(0, 12)]);
      expect(logs.stdout).toContain('hello from web\n');
      expect(logs.stdout).toContain('to stderr\n');

      // logs -f ends when the container does: stop it meanwhile.
      const follow = runCli(['logs', '-f', 'web'], opts());
      const stop = await cli(['stop', '-t', '5', 'web']);
      expect(stop.code, stop.stderr).toBe(0);
      expect(stop.stdout).toBe('web\n');
      const f = await follow;
      expect(f.code).toBe(0);
      expect(f.stdout).toContain('stopping\n');
      await until(async () => /Exited \(0\)\s+web$/m.test((await cli(['ps', '-a'])).stdout));

      const rm = await cli(['rm', 'web', 'quick']);
      expect(rm.code, rm.stderr).toBe(0);
      expect((await cli(['ps', '-a', '-q'])).stdout.trim()).toBe('');
      expect(readdirSync(join(stateDir(), 'containers'))).toEqual([]);
      const rt = join(stateDir(), 'runtime', m.runtime);
      expect(existsSync(rt) ? readdirSync(rt) : []).toEqual([]);
    });

    it('kill -s, stop escalating to SIGKILL, rm of a running container needs -f', async () => {
      expect((await start('stubborn', ['sh', '-c', 'trap "" TERM; trap "echo got USR1" USR1; echo up; while :; do sleep 0.1; done'])).code).toBe(0);
      await until(async () => (await cli(['logs', 'stubborn'])).stdout.includes('up'));
      const k = await cli(['kill', '-s', 'USR1', 'stubborn']);
      expect(k.code, k.stderr).toBe(0);
      await until(async () => (await cli(['logs', 'stubborn'])).stdout.includes('got USR1'));
      const bad = await cli(['kill', '-s', 'NOPE', 'stubborn']);
      expect(bad.code).toBe(125);
      expect(bad.stderr).toContain('kill: unknown signal NOPE');
      const rm = await cli(['rm', 'stubborn']);
      expect(rm.code).toBe(125);
      expect(rm.stderr).toMatch(/remove container stubborn: it is running\nhint: stop it first/);
      // SIGTERM is ignored: stop falls back to SIGKILL after 1 s.
      const stop = await cli(['stop', '-t', '1', 'stubborn']);
      expect(stop.code).toBe(0);
      await until(async () => /Exited \(137\)\s+stubborn$/m.test((await cli(['ps', '-a'])).stdout));
      expect((await cli(['rm', 'stubborn'])).code).toBe(0);

      expect((await start('doomed', ['sleep', '60'])).code).toBe(0);
      const rmf = await cli(['rm', '-f', 'doomed']);
      expect(rmf.code, rmf.stderr).toBe(0);
      expect((await cli(['ps', '-a', '-q'])).stdout.trim()).toBe('');
      const missing = await cli(['logs', 'doomed']);
      expect(missing.code).toBe(125);
      expect(missing.stderr).toMatch(/find container doomed: no such container/);
    });

    it('-d --rm: the container removes itself when it ends', async () => {
      const r = await runCli(['--config', config(['sh', '-c', 'sleep 0.3']), '--runtime', m.runtime, '--name', 'ephemeral', '-d', '--rm'], opts({ entry: DRIVE }));
      expect(r.code, r.stderr).toBe(0);
      expect((await cli(['ps', '-q'])).stdout.trim()).toBe(r.stdout.trim().slice(0, 12));
      await until(async () => readdirSync(join(stateDir(), 'containers')).length === 0);
      expect((await cli(['ps', '-a', '-q'])).stdout.trim()).toBe('');
      const rt = join(stateDir(), 'runtime', m.runtime);
      expect(existsSync(rt) ? readdirSync(rt) : []).toEqual([]);
    });

    it('a detached container that cannot start fails at once with 127 and leaves nothing', async () => {
      const r = await start('broken', ['nonexist']);
      expect(r.code).toBe(127);
      expect(r.stderr).toContain('nonexist: executable file not found in $PATH');
      expect((await cli(['ps', '-a', '-q'])).stdout.trim()).toBe('');
    });
  });
}
