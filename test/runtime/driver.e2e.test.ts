/**
 * The driver against the real runc and crun, as root and as the unprivileged
 * test user, through test/runtime/drive.ts (the stand-in for `s2n-oci run`).
 * crun goes through the cgroup2 mount-namespace shim: this host is hybrid.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { CAN_RUN_AS_USER, cliSandbox, IS_ROOT, REPO_ROOT, runCli, spawnCli, testUser, type CliOptions } from '../helpers/cli.js';
import { runTerminalScenario, TERMINAL_SCRIPT } from '../helpers/pty.js';
import { removeDir } from '../helpers/tmp.js';
import { buildBusyboxRootfs, busyboxConfig, HAVE_BUSYBOX, type ConfigOptions } from './fixture.js';

const DRIVE = join(REPO_ROOT, 'dist', 'test', 'runtime', 'drive.js');
const SHIM = 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"';

interface Mode {
  label: string;
  runtime: 'runc' | 'crun';
  user: boolean;
}

const MODES: Mode[] = [
  { label: 'root, runc', runtime: 'runc', user: false },
  { label: 'root, crun (cgroup2 shim)', runtime: 'crun', user: false },
  { label: 's2n-test, runc', runtime: 'runc', user: true },
  { label: 's2n-test, crun (cgroup2 shim)', runtime: 'crun', user: true },
];

let parent: string;
let rootfs: string;
beforeAll(() => {
  if (!HAVE_BUSYBOX) return;
  parent = mkdtempSync(join(tmpdir(), 's2n-rt-e2e-'));
  rootfs = buildBusyboxRootfs(parent);
});
afterAll(async () => {
  if (parent) await removeDir(parent);
});

function stateDir(m: Mode): string {
  const sb = cliSandbox();
  return m.user ? join(sb.env.XDG_RUNTIME_DIR!, 's2n-oci') : join(sb.dir, 'state');
}

function cliOpts(m: Mode, extra: CliOptions = {}): CliOptions {
  return {
    entry: DRIVE,
    ...(m.user ? { as: 'user' as const } : {}),
    ...(m.runtime === 'crun' ? { cgroup2: true } : {}),
    env: { ...(m.user ? {} : { S2N_OCI_STATE: join(cliSandbox().dir, 'state') }), ...extra.env },
    timeoutMs: 30_000,
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'env')),
  };
}

/** Writes a config for this mode and returns its path. */
function config(m: Mode, o: Omit<ConfigOptions, 'rootfs'> & { rootfs?: string }): string {
  const u = testUser();
  const cfg = busyboxConfig({ rootfs, ...o, ...(m.user && u ? { rootless: { uid: u.uid, gid: u.gid } } : {}) });
  const dir = mkdtempSync(join(parent, 'cfg-'));
  chmodSync(dir, 0o755);
  const f = join(dir, 'config.json');
  writeFileSync(f, JSON.stringify(cfg), { mode: 0o644 });
  return f;
}

function drive(m: Mode, cfg: string, args: string[] = [], extra: CliOptions = {}) {
  return runCli(['--config', cfg, '--runtime', m.runtime, ...args], cliOpts(m, extra));
}

/** Containers the state root still holds, and what the runtime still knows. */
function leftovers(m: Mode): { records: string[]; runtime: string[] } {
  const st = stateDir(m);
  const ls = (d: string): string[] => (existsSync(d) ? readdirSync(d) : []);
  return { records: ls(join(st, 'containers')), runtime: ls(join(st, 'runtime', m.runtime)) };
}

function waitFor(get: () => string, re: RegExp, ms = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const t = setInterval(() => {
      if (re.test(get())) {
        clearInterval(t);
        resolve();
      } else if (Date.now() > deadline) {
        clearInterval(t);
        reject(new Error(`timed out waiting for ${re}; got: ${get()}`));
      }
    }, 20);
  });
}

const can = IS_ROOT && HAVE_BUSYBOX;

for (const m of MODES) {
  describe.skipIf(!can || (m.user && !CAN_RUN_AS_USER))(`driver: ${m.label}`, () => {
    beforeEach(() => {
      // Whatever a failing test left running goes before its sandbox does (onTestFinished runs last-registered first).
      cliSandbox();
      onTestFinished(async () => {
        const ids = (await runCli(['ps', '-a', '-q'], { ...cliOpts(m), entry: undefined })).stdout.split('\n').filter(Boolean);
        if (ids.length > 0) await runCli(['rm', '-f', ...ids], { ...cliOpts(m), entry: undefined });
      });
    });

    it('passes stdout/stderr through and returns the exit code; --rm leaves no state', async () => {
      const r = await drive(m, config(m, { args: ['sh', '-c', 'echo out; echo err >&2; id -u; exit 3'] }));
      expect(r.stdout).toBe('out\n0\n');
      expect(r.stderr).toContain('err\n');
      expect(r.code).toBe(3);
      expect((await drive(m, config(m, { args: ['true'] }))).code).toBe(0);
      expect(leftovers(m)).toEqual({ records: [], runtime: [] });
    });

    it('passes stdin only with -i', async () => {
      const cfg = config(m, { args: ['cat'] });
      const withI = await drive(m, cfg, ['-i'], { input: 'piped input\n' });
      expect(withI.stdout).toBe('piped input\n');
      const without = await drive(m, cfg, [], { input: 'piped input\n' });
      expect(without.stdout).toBe('');
      expect(without.code).toBe(0);
    });

    it('exits 127 for a missing command (before start and from the runtime) and 126 for a non-executable one', async () => {
      const cfg = config(m, { args: ['nonexist'] });
      const pre = await drive(m, cfg, ['--check-rootfs', rootfs]);
      expect(pre.code).toBe(127);
      expect(pre.stderr).toContain('Error: run container: nonexist: executable file not found in $PATH');
      const late = await drive(m, cfg);
      expect(late.code).toBe(127);
      expect(late.stderr).toContain('Error: run container: nonexist: executable file not found in $PATH');
      const noexec = await drive(m, config(m, { args: ['/noexec/script'] }));
      expect(noexec.code).toBe(126);
      expect(noexec.stderr).toMatch(/Error: run container: \/noexec\/script: permission denied/);
      expect(leftovers(m).records).toEqual([]);
    });

    it('exits 125 with the runtime message when the runtime fails', async () => {
      const r = await drive(m, config(m, { args: ['true'], rootfs: '/nonexistent-rootfs' }));
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(new RegExp(`Error: run container: ${m.runtime}: .*nonexistent-rootfs`));
      expect(leftovers(m)).toEqual({ records: [], runtime: [] });
    });

    it('exits 137 when the container is killed, and forwards SIGTERM to it', async () => {
      const sleeper = config(m, { args: ['sh', '-c', 'echo ready; exec sleep 30'] });
      const child = spawnCli(['--config', sleeper, '--runtime', m.runtime, '--name', 'victim'], cliOpts(m));
      let out = '';
      child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      await waitFor(() => out, /ready/);
      const closed = new Promise<number | null>((r) => child.once('close', (c) => r(c)));
      // The real CLI's kill command, on the same state root.
      const k = await runCli(['kill', 'victim'], { ...cliOpts(m), entry: undefined });
      expect(k.stderr).toBe('');
      expect(await closed).toBe(137);

      const trapper = config(m, { args: ['sh', '-c', 'trap "echo got TERM; exit 42" TERM; echo ready; while :; do sleep 0.1; done'] });
      const c2 = spawnCli(['--config', trapper, '--runtime', m.runtime], cliOpts(m));
      let out2 = '';
      c2.stdout!.on('data', (b: Buffer) => (out2 += b.toString()));
      await waitFor(() => out2, /ready/);
      const closed2 = new Promise<number | null>((r) => c2.once('close', (c) => r(c)));
      c2.kill('SIGTERM');
      expect(await closed2).toBe(42);
      expect(out2).toContain('got TERM');
      expect(leftovers(m)).toEqual({ records: [], runtime: [] });
    });

    it('cleans up after a kill -9 of the driver at the next start', async () => {
      const child = spawnCli(['--config', config(m, { args: ['sh', '-c', 'echo ready; exec sleep 60'] }), '--runtime', m.runtime], cliOpts(m));
      let out = '';
      child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      await waitFor(() => out, /ready/);
      child.kill('SIGKILL');
      // 'exit', not 'close': the orphaned runtime still holds the driver's stdout.
      await new Promise((r) => child.once('exit', r));
      const stale = leftovers(m);
      expect(stale.records).toHaveLength(1);
      const next = await drive(m, config(m, { args: ['true'] }));
      expect(next.code).toBe(0);
      expect(leftovers(m)).toEqual({ records: [], runtime: [] });
    });

    it('-t: the container gets a real terminal, resizes and Ctrl-C through node-pty', async () => {
      // Chown the sandbox to the test user (runCli does it on first use).
      await drive(m, config(m, { args: ['true'] }));
      const cfg = config(m, {
        terminal: true,
        args: ['sh', '-c', TERMINAL_SCRIPT],
      });
      const u = testUser()!;
      let argv = [process.execPath, DRIVE, '--config', cfg, '--runtime', m.runtime, '-t', '-i'];
      if (m.user) argv = ['setpriv', '--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', ...argv];
      if (m.runtime === 'crun') argv = ['unshare', '-m', 'sh', '-c', SHIM, 'sh', ...argv];
      const sb = cliSandbox();
      const env = { ...sb.env, TERM: 'xterm', ...(m.user ? { USER: u.name } : { S2N_OCI_STATE: join(sb.dir, 'state') }) };
      const r = await runTerminalScenario(argv, { cwd: sb.dir, env });
      expect(r.code, r.out).toBe(7);
      // The container's terminal echoes Ctrl-C as ^C before the trap's output.
      expect(r.lines, r.out).toContain('24 80');
      expect(r.lines, r.out).toContain('^C40 100');
      expect(r.out).toContain('got INT');
      expect(leftovers(m)).toEqual({ records: [], runtime: [] });
    });
  });
}

describe.skipIf(!can)('driver: runtime choice on this hybrid host', () => {
  const hybrid = (() => {
    try {
      return /cgroup2 cgroup2/.test(execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' })) &&
        / - cgroup cgroup /.test(execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }));
    } catch {
      return false;
    }
  })();

  it.skipIf(!hybrid)('refuses crun when chosen explicitly, and falls back to runc with a notice otherwise', async () => {
    const m: Mode = { label: '', runtime: 'runc', user: false };
    const cfg = config(m, { args: ['true'] });
    const opts = { entry: DRIVE, env: { S2N_OCI_STATE: join(cliSandbox().dir, 'state') } };
    const explicit = await runCli(['--config', cfg, '--runtime', 'crun'], opts);
    expect(explicit.code).toBe(125);
    expect(explicit.stderr).toContain('crun does not support cgroup v1+v2 hybrid hosts');
    expect(explicit.stderr).toMatch(/hint: use --runtime runc, or boot with systemd\.unified_cgroup_hierarchy=1/);
    const viaEnv = await runCli(['--config', cfg], { ...opts, env: { ...opts.env, S2N_OCI_RUNTIME: 'crun' } });
    expect(viaEnv.code).toBe(125);
    const auto = await runCli(['--config', cfg], opts);
    expect(auto.code).toBe(0);
    expect(auto.stderr).toMatch(/^notice: crun cannot run on this host \(cgroup v1\+v2 hybrid\); using runc \S+ instead$/m);
  });
});
