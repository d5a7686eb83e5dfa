/**
 * Start-up cost of running a container: `true` in a busybox image, through
 *
 * - `node -e 0` (Node's own start, the floor of anything written in Node);
 * - the bare runtime (runc; crun inside the cgroup2 mount-namespace shim this
 *   hybrid host needs) on a minimal hand-written bundle, and on the very
 *   bundle `s2n-oci run` generates (same mounts, seccomp, namespaces): the
 *   difference between the two is what our config asks of the runtime;
 * - our driver alone (test/runtime/drive.ts: Node + state record + runtime +
 *   --rm clean-up, no image or spec work);
 * - the real warm `s2n-oci run IMAGE true` (image in a bench store, rootfs
 *   cached by one unmeasured run first): as root with runc and with crun (in
 *   the shim), and rootless as the test user with runc;
 * - rootless `podman run --rm` of the same image (with runc: podman's default
 *   crun refuses this hybrid cgroup host) when podman works here.
 *
 * Runtime state (every --root, s2n-oci's state, podman's runroot) is on a
 * tmpfs when we are root, as /run and $XDG_RUNTIME_DIR are on real hosts.
 *
 * `--cli` adds a row for any command line. Every row runs once unmeasured,
 * then the rows take turns in a new order each round, so drift on this shared
 * machine, and what one row leaves warm for the next, hit all alike.
 *
 *   npm run bench:run -- [--runs N] [--cli "…"] [--user NAME]
 *
 * Prints median / min / p90 wall time in milliseconds, then each s2n-oci row
 * against the target of issue 5: bare runtime + `node -e 0` + 30 ms.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { busyboxImage, writeImageArchive } from '../test/helpers/busybox-image.js';
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
const cli = join(repo, 'dist', 'src', 'cli', 's2n-oci.cjs');
const REF = 'localhost/bench/box:1';
const SHIM = 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"';

interface Row {
  name: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
  /** For s2n-oci rows: the bare-runtime rows it is held against (target = runtime + node -e 0 + 30 ms), on the minimal bundle and on our own. */
  floor?: { minimal: string; own: string };
}

const NODE_ROW = 'node -e 0';
/**
 * Idle time before each measured command. A runtime started right after
 * another one runs ~10 ms faster (seen here: runc ~22 ms against ~33 ms after
 * a pause). s2n-oci always starts its runtime after its own ~80 ms of work, so
 * without the pause the bare-runtime rows would be measured warmer than the
 * runtime inside s2n-oci.
 */
const PAUSE_MS = 150;

/** Runs the CLI to completion (load, rm): output only when it fails. */
function cliSync(prefix: string[], args: string[], env: NodeJS.ProcessEnv): string {
  const argv = [...prefix, process.execPath, cli, ...args];
  return execFileSync(argv[0]!, argv.slice(1), { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * A copy of the bundle `s2n-oci run --runtime RUNTIME` generates for REF, its command set to
 * `true`: a detached container is started only to take its bundle, then
 * removed. The config names files of its bundle by absolute path; they are
 * moved to the copy's.
 */
function generatedBundle(prefix: string[], runtime: string, env: NodeJS.ProcessEnv, state: string, dest: string): string {
  const id = cliSync(prefix, ['run', '-d', '--runtime', runtime, REF, 'sleep', '60'], env).trim();
  try {
    const src = join(state, 'containers', id, 'bundle');
    cpSync(src, dest, { recursive: true });
    const text = readFileSync(join(dest, 'config.json'), 'utf8').split(src).join(dest);
    const spec = JSON.parse(text) as { process: { args: string[] } };
    spec.process.args = ['true'];
    writeFileSync(join(dest, 'config.json'), JSON.stringify(spec));
    return dest;
  } finally {
    cliSync(prefix, ['rm', '-f', id], env);
  }
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
  const work = mkdtempSync(join(tmpdir(), 's2n-bench-run-'));
  // Runtime state (runc/crun --root, s2n-oci's state, podman's runroot) lives on a tmpfs, as /run and
  // $XDG_RUNTIME_DIR do on real hosts; this test VM has /run on disk. Stores stay on disk.
  const run = join(work, 'run');
  mkdirSync(run, { mode: 0o755 });
  let tmpfs = false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=755', 's2n-bench-run', run], { stdio: 'ignore' });
    tmpfs = true;
  } catch {
    console.error('runtime state on disk (mounting a tmpfs needs root)');
  }
  try {
    await benchIn(work, run, tmpfs);
  } finally {
    if (tmpfs) execFileSync('umount', ['-l', run]);
    rmSync(work, { recursive: true, force: true });
  }
}

async function benchIn(work: string, run: string, tmpfs: boolean): Promise<void> {
  const isRoot = process.geteuid?.() === 0;
  chmodSync(work, 0o755);
  const rootfs = buildBusyboxRootfs(work);
  const bundle = (name: string, rootless?: { uid: number; gid: number }): string => {
    const d = join(work, name);
    mkdirSync(d, { mode: 0o755 });
    writeFileSync(join(d, 'config.json'), JSON.stringify(busyboxConfig({ rootfs, args: ['true'], ...(rootless ? { rootless } : {}) })), { mode: 0o644 });
    return d;
  };
  // The image s2n-oci and podman run: the busybox test image, built by code.
  const archive = await writeImageArchive(work, await busyboxImage(), REF);
  chmodSync(archive, 0o644);
  const rootBundle = bundle('root');
  const state = join(run, 'state');
  mkdirSync(state, { mode: 0o700 });
  let n = 0;
  const rows: Row[] = [{ name: NODE_ROW, argv: [process.execPath, '-e', '0'] }];
  const shim = (argv: string[]): string[] => ['unshare', '-m', 'sh', '-c', SHIM, 'sh', ...argv];
  // Every run needs a fresh container id; a shell wrapper numbers them.
  const rt = (bin: string, root: string, b: string): string[] => ['sh', '-c', `exec ${bin} --root ${root} run --bundle ${b} bench-$$`];
  const s2n = (prefix: string[], runtime: string): string[] => [...prefix, process.execPath, cli, 'run', '--runtime', runtime, REF, 'true'];
  if (isRoot) {
    const env = { ...process.env, S2N_OCI_ROOT: join(work, 'store-root'), S2N_OCI_STATE: join(state, 's2n-oci') };
    cliSync([], ['load', '-i', archive], env);
    const ours = generatedBundle([], 'runc', env, env.S2N_OCI_STATE, join(work, 'generated-root'));
    rows.push({ name: 'runc run (root)', argv: rt('runc', join(state, 'runc'), rootBundle) });
    rows.push({ name: 'runc run, s2n-oci bundle (root)', argv: rt('runc', join(state, 'runc'), ours) });
    if (has('crun')) {
      rows.push({ name: 'cgroup2 shim alone (unshare+mount, true)', argv: shim(['true']) });
      rows.push({ name: 'crun run (root, in shim)', argv: shim(rt('crun', join(state, 'crun'), rootBundle)) });
      const oursCrun = generatedBundle(shim([]), 'crun', env, env.S2N_OCI_STATE, join(work, 'generated-root-crun'));
      rows.push({ name: 'crun run, s2n-oci bundle (root, in shim)', argv: shim(rt('crun', join(state, 'crun'), oursCrun)) });
    }
    rows.push({ name: 'driver: node drive.js, runc (root)', argv: [process.execPath, drive, '--config', join(rootBundle, 'config.json'), '--runtime', 'runc'], env: { ...process.env, S2N_OCI_STATE: join(state, 'drive') } });
    rows.push({ name: 's2n-oci run, runc (root)', argv: s2n([], 'runc'), env, floor: { minimal: 'runc run (root)', own: 'runc run, s2n-oci bundle (root)' } });
    if (has('crun')) {
      rows.push({
        name: 'driver: node drive.js, crun (root, in shim)',
        argv: shim([process.execPath, drive, '--config', join(rootBundle, 'config.json'), '--runtime', 'crun']),
        env: { ...process.env, S2N_OCI_STATE: join(state, 'drive') },
      });
      rows.push({ name: 's2n-oci run, crun (root, in shim)', argv: shim(s2n([], 'crun')), env, floor: { minimal: 'crun run (root, in shim)', own: 'crun run, s2n-oci bundle (root, in shim)' } });
    }
  }
  const uid = isRoot ? uidOf(values.user!) : undefined;
  if (uid !== undefined) {
    const u = ['setpriv', '--reuid', String(uid), '--regid', String(uid), '--init-groups', '--'];
    const xdg = join(work, 'xdg');
    const xrun = join(run, 'user');
    for (const d of [xdg, xrun]) {
      mkdirSync(d, { mode: 0o700 });
      execFileSync('chown', [`${uid}:${uid}`, d]);
    }
    const ub = bundle('user', { uid, gid: uid });
    const env = { ...process.env, HOME: xdg, XDG_RUNTIME_DIR: xrun, S2N_OCI_STATE: join(xrun, 's2n-oci') };
    const s2nEnv = { ...env, S2N_OCI_ROOT: join(xdg, 'store'), S2N_OCI_STATE: join(xrun, 's2n-run') };
    cliSync(u, ['load', '-i', archive], s2nEnv);
    const ours = generatedBundle(u, 'runc', s2nEnv, s2nEnv.S2N_OCI_STATE, join(xdg, 'generated'));
    // Copied as root: rootless runc needs the bundle to be the user's.
    execFileSync('chown', ['-R', `${uid}:${uid}`, ours]);
    rows.push({ name: `runc run (rootless, ${values.user})`, argv: [...u, ...rt('runc', join(xrun, 'runc'), ub)], env });
    rows.push({ name: `runc run, s2n-oci bundle (rootless)`, argv: [...u, ...rt('runc', join(xrun, 'runc'), ours)], env });
    rows.push({ name: `driver: node drive.js, runc (rootless)`, argv: [...u, process.execPath, drive, '--config', join(ub, 'config.json'), '--runtime', 'runc'], env });
    rows.push({ name: `s2n-oci run, runc (rootless, ${values.user})`, argv: s2n(u, 'runc'), env: s2nEnv, floor: { minimal: `runc run (rootless, ${values.user})`, own: 'runc run, s2n-oci bundle (rootless)' } });
    if (has('podman')) {
      // The same image archive, loaded into a private podman store of the user.
      const pargs = ['--root', join(xdg, 'podman-root'), '--runroot', join(xrun, 'podman-run'), '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', '--runtime', 'runc'];
      const prun = [...u, 'podman', ...pargs, 'run', '--rm', '--net=host', REF, 'true'];
      try {
        execFileSync(u[0]!, [...u.slice(1), 'podman', ...pargs, 'load', '-q', '-i', archive], { env, stdio: ['ignore', 'ignore', 'pipe'] });
        const probe = await wall(prun, env);
        if (probe.code !== 0) throw new Error(probe.stderr.trim().split('\n').pop());
        rows.push({ name: `podman run --rm (rootless, ${values.user})`, argv: prun, env });
      } catch (e) {
        console.error(`podman left out: ${(e as Error).message}`);
      }
    }
  }
  for (const c of values.cli ?? []) rows.push({ name: c, argv: ['sh', '-c', c] });

  // One unmeasured run each: the rootfs cache, the runtime version cache, the page cache.
  for (const r of rows) {
    const m = await wall(r.argv, r.env ?? process.env);
    if (m.code !== 0) throw new Error(`${r.name} failed (exit ${m.code}): ${m.stderr.trim()}`);
  }
  const times = new Map<string, number[]>(rows.map((r) => [r.name, []]));
  for (let i = 0; i < runs; i++) {
    // A fresh order every round, so drift hits every row alike.
    for (const r of shuffled(rows, i)) {
      // The same pause before every command: none starts on what the one before left warm.
      await new Promise((res) => setTimeout(res, PAUSE_MS));
      const m = await wall(r.argv, r.env ?? process.env);
      if (m.code !== 0) throw new Error(`${r.name} failed (exit ${m.code}): ${m.stderr.trim()}`);
      times.set(r.name, [...(times.get(r.name) ?? []), m.ms]);
      n++;
    }
  }
  const med = (name: string): number | undefined => {
    const ts = times.get(name);
    return ts === undefined ? undefined : median(ts);
  };
  const table = [['command', 'median ms', 'min ms', 'p90 ms']];
  for (const [name, ts] of times) {
    const s = [...ts].sort((a, b) => a - b);
    table.push([name, median(s).toFixed(1), s[0]!.toFixed(1), s[Math.min(s.length - 1, Math.floor(s.length * 0.9))]!.toFixed(1)]);
  }
  console.log(`runtime state on ${tmpfs ? 'a tmpfs' : 'disk'}`);
  console.log(`container start-up: \`true\` in a busybox image, ${runs} runs each (${n} runs), load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  printTable(table);
  const goal = [['s2n-oci row', 'median ms', 'target: minimal bundle', 'over', 'target: own bundle', 'over']];
  const nodeMs = med(NODE_ROW)!;
  for (const r of rows) {
    const ours = med(r.name);
    if (ours === undefined || r.floor === undefined) continue;
    const cells = [r.name, ours.toFixed(1)];
    for (const f of [med(r.floor.minimal), med(r.floor.own)]) {
      const target = f === undefined ? undefined : f + nodeMs + 30;
      cells.push(target === undefined ? '-' : target.toFixed(1), target === undefined ? '-' : (ours - target).toFixed(1));
    }
    goal.push(cells);
  }
  console.log('\ns2n-oci run against the target of issue 5: bare runtime + node -e 0 + 30 ms (medians; the runtime on the minimal bundle, and on the one s2n-oci generates)');
  printTable(goal);
}

/** `items` in an order fixed by `seed` (Fisher-Yates with a small LCG: repeatable runs). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let x = Math.imul(seed + 1, 2654435761) >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const j = (x >>> 8) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
