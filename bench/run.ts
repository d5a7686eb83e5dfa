/**
 * Start-up cost of running a container: `true` in a busybox bundle through
 * the bare runtime (runc; crun inside the cgroup2 mount-namespace shim this
 * hybrid host needs), through our driver (test/runtime/drive.ts: Node + state
 * record + runtime + --rm clean-up, no image or spec work), `node -e 0`, and
 * rootless `podman run --rm` (with runc: podman's default crun refuses this hybrid
 * cgroup host) when podman works here. `--cli` adds a row for
 * any command line, e.g. the real `s2n-oci run IMAGE true` once it exists:
 *
 *   npm run bench:run -- [--runs N] [--cli "node dist/src/cli/main.js run busybox true"] [--user]
 *
 * Prints median / min / p90 wall time in milliseconds.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildBusyboxRootfs, busyboxConfig, HAVE_BUSYBOX } from '../test/runtime/fixture.js';
import { has, median, printTable } from './measure.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    cli: { type: 'string', multiple: true },
    user: { type: 'string', default: 's2n-test' },
  },
});
const runs = Number(values.runs);
const repo = resolve(import.meta.dirname, '..', '..');
const drive = join(repo, 'dist', 'test', 'runtime', 'drive.js');
const SHIM = 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"';

interface Row {
  name: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
}

function wall(argv: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; code: number | null; stderr: string }> {
  const t0 = process.hrtime.bigint();
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((res) => child.on('close', (code) => res({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code, stderr })));
}

function uidOf(user: string): number | undefined {
  try {
    return Number(execFileSync('id', ['-u', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  if (!HAVE_BUSYBOX) throw new Error('needs /bin/busybox: apt-get install busybox-static');
  const isRoot = process.geteuid?.() === 0;
  const work = mkdtempSync(join(tmpdir(), 's2n-bench-run-'));
  chmodSync(work, 0o755);
  const rootfs = buildBusyboxRootfs(work);
  const bundle = (name: string, rootless?: { uid: number; gid: number }): string => {
    const d = join(work, name);
    mkdirSync(d, { mode: 0o755 });
    writeFileSync(join(d, 'config.json'), JSON.stringify(busyboxConfig({ rootfs, args: ['true'], ...(rootless ? { rootless } : {}) })), { mode: 0o644 });
    return d;
  };
  const rootBundle = bundle('root');
  const state = join(work, 'state');
  mkdirSync(state, { mode: 0o700 });
  let n = 0;
  const rows: Row[] = [{ name: 'node -e 0', argv: [process.execPath, '-e', '0'] }];
  const shim = (argv: string[]): string[] => ['unshare', '-m', 'sh', '-c', SHIM, 'sh', ...argv];
  // Every run needs a fresh container id; a shell wrapper numbers them.
  const rt = (bin: string, root: string, b: string): string[] => ['sh', '-c', `exec ${bin} --root ${root} run --bundle ${b} bench-$$`];
  if (isRoot) {
    rows.push({ name: 'runc run (root)', argv: rt('runc', join(state, 'runc'), rootBundle) });
    if (has('crun')) {
      rows.push({ name: 'cgroup2 shim alone (unshare+mount, true)', argv: shim(['true']) });
      rows.push({ name: 'crun run (root, in shim)', argv: shim(rt('crun', join(state, 'crun'), rootBundle)) });
    }
    rows.push({ name: 'driver: node drive.js, runc (root)', argv: [process.execPath, drive, '--config', join(rootBundle, 'config.json'), '--runtime', 'runc'], env: { ...process.env, S2N_OCI_STATE: join(state, 'drive') } });
    if (has('crun')) {
      rows.push({
        name: 'driver: node drive.js, crun (root, in shim)',
        argv: shim([process.execPath, drive, '--config', join(rootBundle, 'config.json'), '--runtime', 'crun']),
        env: { ...process.env, S2N_OCI_STATE: join(state, 'drive') },
      });
    }
  }
  const uid = isRoot ? uidOf(values.user!) : undefined;
  if (uid !== undefined) {
    const u = ['setpriv', '--reuid', String(uid), '--regid', String(uid), '--init-groups', '--'];
    const xdg = join(work, 'xdg');
    mkdirSync(xdg, { mode: 0o700 });
    execFileSync('chown', [`${uid}:${uid}`, xdg]);
    const ub = bundle('user', { uid, gid: uid });
    const env = { ...process.env, HOME: xdg, XDG_RUNTIME_DIR: xdg, S2N_OCI_STATE: join(xdg, 's2n-oci') };
    rows.push({ name: `runc run (rootless, ${values.user})`, argv: [...u, ...rt('runc', join(xdg, 'runc'), ub)], env });
    rows.push({ name: `driver: node drive.js, runc (rootless)`, argv: [...u, process.execPath, drive, '--config', join(ub, 'config.json'), '--runtime', 'runc'], env });
    if (has('podman')) {
      // A podman image from the same rootfs, in a private store of the user.
      const pargs = ['--root', join(xdg, 'podman-root'), '--runroot', join(xdg, 'podman-run'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', '--runtime', 'runc'];
      try {
        execFileSync('sh', ['-c', `tar -C ${rootfs} -c . | ${u.join(' ')} podman ${pargs.join(' ')} import -q - localhost/bench-busybox`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
        const probe = await wall([...u, 'podman', ...pargs, 'run', '--rm', '--net=host', 'localhost/bench-busybox', 'true'], env);
        if (probe.code !== 0) throw new Error(probe.stderr.trim().split('\n').pop());
        rows.push({ name: `podman run --rm (rootless, ${values.user})`, argv: [...u, 'podman', ...pargs, 'run', '--rm', '--net=host', 'localhost/bench-busybox', 'true'], env });
      } catch (e) {
        console.error(`podman left out: ${(e as Error).message}`);
      }
    }
  }
  for (const c of values.cli ?? []) rows.push({ name: c, argv: ['sh', '-c', c] });

  const times = new Map<string, number[]>();
  for (let i = 0; i < runs; i++) {
    for (const r of rows) {
      const m = await wall(r.argv, r.env ?? process.env);
      if (m.code !== 0) throw new Error(`${r.name} failed (exit ${m.code}): ${m.stderr.trim()}`);
      times.set(r.name, [...(times.get(r.name) ?? []), m.ms]);
      n++;
    }
  }
  const table = [['command', 'median ms', 'min ms', 'p90 ms']];
  for (const [name, ts] of times) {
    const s = [...ts].sort((a, b) => a - b);
    table.push([name, median(s).toFixed(1), s[0]!.toFixed(1), s[Math.min(s.length - 1, Math.floor(s.length * 0.9))]!.toFixed(1)]);
  }
  console.log(`container start-up: \`true\` in a busybox bundle, ${runs} runs each (${n} runs)`);
  printTable(table);
  rmSync(work, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
