/**
 * `s2n-oci run` end to end: a busybox image built by code, loaded with the
 * CLI, run with the real runc and crun, as root and as the unprivileged
 * s2n-test user (subuid range). crun goes through the cgroup2 mount-namespace
 * shim, since it refuses this host's hybrid cgroup layout.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage } from '../helpers/push.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { writeImageArchive, busyboxImage } from '../helpers/busybox-image.js';
import { CAN_RUN_AS_USER, cliSandbox, IS_ROOT, runCli, spawnCli, testUser, type CliOptions, type CliResult, type CliSandbox } from '../helpers/cli.js';

interface Config {
  label: string;
  runtime: 'runc' | 'crun';
  as?: 'user';
  cgroup2?: boolean;
  skip: boolean;
}

const CONFIGS: Config[] = [
  { label: 'runc as root', runtime: 'runc', skip: !IS_ROOT },
  { label: 'runc as the unprivileged test user', runtime: 'runc', as: 'user', skip: !CAN_RUN_AS_USER },
  { label: 'crun as root (cgroup2 shim)', runtime: 'crun', cgroup2: true, skip: !IS_ROOT },
  { label: 'crun as the unprivileged test user (cgroup2 shim)', runtime: 'crun', as: 'user', cgroup2: true, skip: !CAN_RUN_AS_USER },
];

const BOX = 'localhost/s2n-test/box:1';
const EP = 'localhost/s2n-test/entrypoint:1';

/** The host uid a container uid lands on for this config (subuid range for the test user). */
function hostUid(c: Config, containerUid: number): number {
  if (c.as !== 'user') return containerUid;
  const u = testUser()!;
  if (containerUid === 0) return u.uid;
  const line = readFileSync('/etc/subuid', 'utf8').split('\n').find((l) => l.startsWith(`${u.name}:`) || l.startsWith(`${u.uid}:`));
  const start = Number(line?.split(':')[1]);
  return start + containerUid - 1;
}

function waitFor(child: ReturnType<typeof spawnCli>, text: string, ms = 20_000): Promise<string> {
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(out)}`)), ms);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes(text)) {
        clearTimeout(t);
        resolve(out);
      }
    });
  });
}

function exited(child: ReturnType<typeof spawnCli>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

for (const c of CONFIGS) {
  describe.skipIf(c.skip)(`run with ${c.label}`, () => {
    let sb: CliSandbox;
    const opts = (extra: CliOptions = {}): CliOptions => ({ sandbox: sb, ...(c.as ? { as: c.as } : {}), ...(c.cgroup2 ? { cgroup2: true } : {}), timeoutMs: 60_000, ...extra });
    const cli = (args: string[], extra: CliOptions = {}): Promise<CliResult> => runCli(args, opts(extra));
    const run = (args: string[], extra: CliOptions = {}): Promise<CliResult> => cli(['run', '--runtime', c.runtime, ...args], extra);

    beforeAll(async () => {
      sb = cliSandbox();
      chmodSync(sb.dir, 0o755);
      const box = await writeImageArchive(sb.dir, await busyboxImage(), BOX);
      const ep = await writeImageArchive(sb.dir, await busyboxImage({ config: { Entrypoint: ['echo', 'ep'], Cmd: ['c1'] } }), EP);
      for (const a of [box, ep]) {
        const r = await cli(['load', '-i', a]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      }
    }, 120_000);

    it("runs the image's Cmd and passes the container's stdout through", async () => {
      const r = await run([BOX]);
      expect(r.stdout).toBe('default-cmd\n');
      expect(r.code).toBe(0);
    });

    it('a warm run loads neither node:crypto nor the HTTP stack (the store verified the image when it took it in)', async () => {
      const preload = join(sb.dir, 'modules.cjs');
      writeFileSync(
        preload,
        "process.on('exit', () => process.stderr.write('s2n-modules ' + JSON.stringify(process.moduleLoadList.filter((m) => m.startsWith('NativeModule '))) + '\\n'));\n",
        { mode: 0o644 },
      );
      expect((await run([BOX, 'true'])).code).toBe(0); // the rootfs is cached: what follows is warm
      const r = await run([BOX, 'true'], { env: { NODE_OPTIONS: `--require ${preload}` } });
      expect(r.code, r.stderr).toBe(0);
      const line = r.stderr.split('\n').find((l) => l.startsWith('s2n-modules '));
      const loaded = (JSON.parse(line?.slice('s2n-modules '.length) ?? '[]') as string[]).map((m) => m.slice('NativeModule '.length));
      expect(loaded).toContain('child_process'); // the probe sees what was loaded
      expect(loaded.filter((m) => ['crypto', 'http', 'tls', 'http2', 'zlib'].includes(m))).toEqual([]);
    });

    it('combines Entrypoint and Cmd like docker: args replace Cmd, --entrypoint replaces both', async () => {
      for (const [args, out] of [
        [[EP], 'ep c1\n'],
        [[EP, 'x', 'y'], 'ep x y\n'],
        [['--entrypoint', 'echo', EP], '\n'],
        [['--entrypoint', 'echo', EP, 'only'], 'only\n'],
      ] as const) {
        const r = await run([...args]);
        expect(r.stdout, `${args.join(' ')}: ${r.stderr}`).toBe(out);
      }
    });

    it("returns the command's own exit code", async () => {
      const r = await run([BOX, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      expect(r.stdout).toBe('out\n');
      expect(r.stderr).toContain('err\n');
      expect(r.code).toBe(3);
    });

    it('exits 127 for a command that is not there and 126 for one that cannot be executed, before starting', async () => {
      const missing = await run([BOX, 'no-such-command']);
      expect(missing.code).toBe(127);
      expect(missing.stderr).toMatch(/no-such-command.*not found/);
      const notExec = await run([BOX, '/etc/passwd']);
      expect(notExec.code).toBe(126);
      expect(notExec.stderr).toMatch(/permission denied/);
    });

    it('exits 125 with one clear line for a runner error', async () => {
      const bad = await run(['--memory', 'lots', BOX]);
      expect(bad.code).toBe(125);
      expect(bad.stderr).toMatch(/^Error: .*--memory/m);
      const noRuntime = await cli(['run', '--runtime', '/nonexistent/runc', BOX]);
      expect(noRuntime.code).toBe(125);
      expect(noRuntime.stderr).toMatch(/^Error: .*\/nonexistent\/runc/m);
      const noImage = await run(['--pull', 'never', 'localhost/absent:1']);
      expect(noImage.code).toBe(125);
      expect(noImage.stderr).toMatch(/not in the store/);
    });

    it('sets the environment from the image, --env-file and -e in that order', async () => {
      const envFile = join(sb.dir, 'env.list');
      writeFileSync(envFile, '# comment\nFROM_FILE=file\nFOO=from-file\n');
      chmodSync(envFile, 0o644);
      const r = await run(['--env-file', envFile, '-e', 'A=1', '-e', 'FOO=from-flag', BOX, 'sh', '-c', 'echo "$A $FOO $FROM_FILE $PATH $HOME"']);
      expect(r.stdout).toBe('1 from-flag file /bin /root\n');
    });

    it('uses -w as the working directory', async () => {
      expect((await run(['-w', '/home/app', BOX, 'pwd'])).stdout).toBe('/home/app\n');
    });

    it('runs as a USER given by name (with supplementary groups) or by number', async () => {
      const byName = await run(['-u', 'app', BOX, 'id']);
      expect(byName.stdout, byName.stderr).toMatch(/^uid=1000\(app\) gid=1000\(app\) groups=/);
      // Rootless runc cannot call setgroups (it warns); everywhere else the user's /etc/group memberships apply.
      if (!(c.runtime === 'runc' && c.as === 'user')) expect(byName.stdout).toMatch(/groups=.*2000\(extra\)/);
      else expect(byName.stderr).toMatch(/supplementary groups/);
      expect((await run(['-u', '1234:4321', BOX, 'sh', '-c', 'id -u; id -g'])).stdout).toBe('1234\n4321\n');
      const unknown = await run(['-u', 'nobody-here', BOX, 'true']);
      expect(unknown.code).toBe(125);
      expect(unknown.stderr).toMatch(/nobody-here/);
    });

    it('keeps image ownership as seen from inside', async () => {
      const r = await run([BOX, 'stat', '-c', '%u:%g %n', '/home/app/owned-by-app', '/bin/busybox']);
      expect(r.stdout).toBe('1000:1000 /home/app/owned-by-app\n0:0 /bin/busybox\n');
    });

    it('has a read-only root with writable tmpfs at /tmp, /run and /var/tmp', async () => {
      const ro = await run([BOX, 'touch', '/data/x']);
      expect(ro.code).not.toBe(0);
      expect(ro.stderr).toMatch(/Read-only file system/);
      const tmp = await run([BOX, 'sh', '-c', 'touch /tmp/a /run/b && mkdir -p /var/tmp && echo ok']);
      expect(tmp.stdout).toBe('ok\n');
    });

    it('--read-only=false gives a private writable copy, and the next container sees the image unchanged', async () => {
      const w = await run(['--read-only=false', BOX, 'sh', '-c', 'echo changed > /data/x && cat /data/x && head -1 /proc/self/mountinfo']);
      expect(w.stdout, w.stderr).toMatch(/^changed\n/);
      expect(w.code).toBe(0);
      // The copy lives in the store (not in the state root, often a small tmpfs) and goes with the container.
      expect(w.stdout).toContain(join(sb.root, 'rootfs', 'rw'));
      const rw = join(sb.root, 'rootfs', 'rw');
      expect(existsSync(rw) ? readdirSync(rw) : []).toEqual([]);
      const again = await run([BOX, 'ls', '/data']);
      expect(again.stdout).toBe('');
    });

    it('bind-mounts -v read-write and read-only; a file written by USER app is owned by its mapped host uid', async () => {
      const vol = join(sb.dir, `vol-${Date.now()}`);
      mkdirSync(vol);
      chmodSync(vol, 0o777);
      const rw = await run(['-u', 'app', '-v', `${vol}:/vol`, BOX, 'sh', '-c', 'echo written > /vol/f']);
      expect(rw.code).toBe(0);
      expect(readFileSync(join(vol, 'f'), 'utf8')).toBe('written\n');
      expect(statSync(join(vol, 'f')).uid).toBe(hostUid(c, 1000));
      const ro = await run(['-v', `${vol}:/vol:ro`, BOX, 'sh', '-c', 'echo no > /vol/g']);
      expect(ro.code).not.toBe(0);
      expect(existsSync(join(vol, 'g'))).toBe(false);
    });

    it('--network none leaves only loopback; the default shares the host network', async () => {
      const none = await run(['--network', 'none', BOX, 'cat', '/proc/net/dev']);
      const ifaces = (s: string): string[] => s.split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean).sort();
      expect(ifaces(none.stdout)).toEqual(['lo']);
      const host = await run([BOX, 'cat', '/proc/net/dev']);
      expect(ifaces(host.stdout)).toEqual(ifaces(readFileSync('/proc/net/dev', 'utf8')));
    });

    it('forwards SIGTERM to the container and exits with its status', async () => {
      const child = spawnCli(['run', '--runtime', c.runtime, BOX, 'sh', '-c', 'trap "echo got-term; exit 7" TERM; echo ready; while :; do sleep 0.1; done'], opts());
      const done = exited(child);
      await waitFor(child, 'ready');
      child.kill('SIGTERM');
      const r = await done;
      expect(r.stdout).toContain('got-term');
      expect(r.code).toBe(7);
    });

    it('exits 137 when the container is killed, and --rm leaves no state behind', async () => {
      const name = `k-${Date.now()}`;
      const child = spawnCli(['run', '--runtime', c.runtime, '--name', name, BOX, 'sh', '-c', 'echo ready; exec sleep 60'], opts());
      const done = exited(child);
      await waitFor(child, 'ready');
      const k = await cli(['kill', name]);
      expect(k.code).toBe(0);
      expect((await done).code).toBe(137);
      const ps = await cli(['ps', '-a']);
      expect(ps.stdout).not.toContain(name);
      const containers = join(sb.env.S2N_OCI_STATE!, 'containers');
      expect(existsSync(containers) ? readdirSync(containers) : []).toEqual([]);
    });

    it('cleans up after s2n-oci itself was killed with SIGKILL', async () => {
      const name = `orphan-${Date.now()}`;
      const child = spawnCli(['run', '--runtime', c.runtime, '--name', name, BOX, 'sh', '-c', 'echo ready; exec sleep 60'], opts());
      const done = exited(child);
      await waitFor(child, 'ready');
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
      void done;
      const next = await run([BOX, 'true']);
      expect(next.code).toBe(0);
      const ps = await cli(['ps', '-a']);
      expect(ps.stdout).not.toContain(name);
      const containers = join(sb.env.S2N_OCI_STATE!, 'containers');
      expect(existsSync(containers) ? readdirSync(containers) : []).toEqual([]);
    });
  });
}

describe.skipIf(!IS_ROOT)('run on this hybrid-cgroup host without the shim', () => {
  it('explains why crun cannot run here when it is asked for by name', async () => {
    const sb = cliSandbox();
    chmodSync(sb.dir, 0o755);
    const a = await writeImageArchive(sb.dir, await busyboxImage(), BOX);
    expect((await runCli(['load', '-i', a], { sandbox: sb })).code).toBe(0);
    const hybrid = readFileSync('/proc/self/mountinfo', 'utf8').includes(' - cgroup ') && readFileSync('/proc/self/mountinfo', 'utf8').includes(' - cgroup2 ');
    const r = await runCli(['run', '--runtime', 'crun', BOX, 'true'], { sandbox: sb });
    if (hybrid) {
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/crun does not support cgroup v1\+v2 hybrid hosts/);
      expect(r.stderr).toMatch(/^hint: .*--runtime runc/m);
      // Not named: it falls back to runc and says so.
      const auto = await runCli(['run', BOX], { sandbox: sb, env: { S2N_OCI_RUNTIME: undefined } });
      expect(auto.stdout).toBe('default-cmd\n');
      expect(auto.stderr).toMatch(/using runc/);
    } else {
      expect(r.code).toBe(0);
    }
  });
});

describe.skipIf(!IS_ROOT && !CAN_RUN_AS_USER)('run pulls a missing image, as --pull says', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
    await pushImage(reg, 's2n-test/box', await busyboxImage({ config: { Cmd: ['echo', 'pulled-and-ran'] } }), { tags: ['1'] });
  }, 60_000);
  afterAll(async () => reg?.stop());

  it('pulls with the default --pull=missing, and not with --pull=never', async () => {
    const ref = `${reg.host}/s2n-test/box:1`;
    const never = await runCli(['run', '--pull', 'never', ref]);
    expect(never.code).toBe(125);
    expect(never.stderr).toMatch(/not in the store/);
    expect(never.stderr).toMatch(/^hint: .*load/m);
    const r = await runCli(['run', '--runtime', 'runc', ref]);
    expect(r.stdout, r.stderr).toBe('pulled-and-ran\n');
    expect(r.stderr).toMatch(/pulling/);
    const images = await runCli(['images']);
    expect(images.stdout).toContain(`${reg.host}/s2n-test/box`);
  });
});
