/**
 * Runs the built CLI (`dist/src/cli/s2n-oci.cjs`, the installed command, built before vitest)
 * as a child process with a clean, sandboxed environment: HOME, XDG dirs,
 * TMPDIR and the store root all point into a per-test temp dir, so no test
 * reads the developer's credentials or writes to /var/lib (we run as root).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, onTestFinished } from 'vitest';
import { killOnExit, removeDir, removeOnExit } from './tmp.js';

export { withTempDir } from './tmp.js';

/** The repository root: the nearest dir upward holding the s2n-oci package.json (works from test/ and dist/test/). */
export const REPO_ROOT: string = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(d, 'package.json');
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 's2n-oci') return d;
    const up = dirname(d);
    if (up === d) throw new Error('cannot find the s2n-oci package root');
    d = up;
  }
})();

/** The CLI entry point; `S2N_OCI_CLI` overrides it (e.g. to test an installed build). */
export const CLI_PATH: string = process.env.S2N_OCI_CLI ?? join(REPO_ROOT, 'dist', 'src', 'cli', 's2n-oci.cjs');

/**
 * A temp dir removed when the current test finishes. Outside a running test
 * (beforeAll, module scope) it is removed at process exit instead.
 */
export function tempDir(prefix = 's2n-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  removeOnExit(d);
  try {
    onTestFinished(() => removeDir(d));
  } catch {
    // Not inside a running test: the exit hook removes it.
  }
  return d;
}

export interface CliSandbox {
  /** The sandbox's base dir; default cwd of the CLI. */
  dir: string;
  home: string;
  /** Store root, passed as S2N_OCI_ROOT. */
  root: string;
  /** The clean environment (without per-call overrides). */
  env: Record<string, string>;
}

const sandboxes = new Map<string, CliSandbox>();

function makeSandbox(dir: string): CliSandbox {
  const p = (name: string, mode = 0o755): string => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true, mode });
    return d;
  };
  const home = p('home');
  const root = join(dir, 'root'); // left for the CLI to create, as on a first run
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    USER: process.env.USER ?? 'root',
    XDG_CONFIG_HOME: p('home/.config'),
    XDG_DATA_HOME: p('home/.local/share'),
    XDG_CACHE_HOME: p('home/.cache'),
    XDG_STATE_HOME: p('home/.local/state'),
    XDG_RUNTIME_DIR: p('run', 0o700),
    TMPDIR: p('tmp'),
    S2N_OCI_ROOT: root,
    // Container state per sandbox, also as root (whose default, /run/s2n-oci, other tests share).
    S2N_OCI_STATE: join(dir, 'run', 's2n-oci'),
    LANG: 'C.UTF-8',
    TZ: 'UTC',
    NO_COLOR: '1',
    TERM: 'dumb',
  };
  return { dir, home, root, env };
}

/**
 * The current test's sandbox, created on first use and shared by every CLI
 * call in the same test (so `login` then `pull` see the same HOME). Outside a
 * test each call gets a fresh one.
 */
export function cliSandbox(): CliSandbox {
  const st = expect.getState();
  const key = st.currentTestName !== undefined ? `${st.testPath ?? ''}\0${st.currentTestName}` : undefined;
  const hit = key !== undefined ? sandboxes.get(key) : undefined;
  if (hit) return hit;
  const sb = makeSandbox(tempDir('s2n-cli-'));
  if (key !== undefined) {
    sandboxes.set(key, sb);
    try {
      onTestFinished(() => {
        sandboxes.delete(key);
      });
    } catch {
      /* not in a test after all */
    }
  }
  return sb;
}

export interface CliOptions {
  /** Added to the clean env; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed. Without it stdin is closed at once (runCli) or left open (spawnCli). */
  input?: string | Buffer;
  /** Kill with SIGKILL after this long. Default 60 s for runCli, none for spawnCli. */
  timeoutMs?: number;
  /** Store root (S2N_OCI_ROOT). Default: `<sandbox>/root`. */
  root?: string;
  cwd?: string;
  /** Use this sandbox instead of the current test's (e.g. to share one across tests). */
  sandbox?: CliSandbox;
  /** Script to run instead of CLI_PATH (the harness tests itself with a stub). */
  entry?: string;
  /**
   * 'user': run as the unprivileged TEST_USER (needs root; the sandbox is
   * chowned to it first). Default: as the current user.
   */
  as?: 'user';
  /**
   * Run inside a private mount namespace whose /sys/fs/cgroup is a pure
   * cgroup2 mount: crun refuses this host's v1+v2 hybrid layout, so tests
   * that use crun go through this shim (needs root).
   */
  cgroup2?: boolean;
}

/** The unprivileged user with a subuid/subgid range that `scripts/setup-host.sh --test` creates. */
export const TEST_USER = 's2n-test';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

let testUserCache: TestUser | null | undefined;

/** TEST_USER's ids, or undefined when it does not exist. */
export function testUser(): TestUser | undefined {
  if (testUserCache === undefined) {
    try {
      const uid = Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      const gid = Number(execFileSync('id', ['-g', TEST_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      testUserCache = { name: TEST_USER, uid, gid };
    } catch {
      testUserCache = null;
    }
  }
  return testUserCache ?? undefined;
}

export const IS_ROOT: boolean = process.geteuid?.() === 0;

/** True when tests can run the CLI as TEST_USER (we are root and the user exists). */
export const CAN_RUN_AS_USER: boolean = IS_ROOT && testUser() !== undefined;

const chownedSandboxes = new Set<string>();

function giveSandboxTo(sb: CliSandbox, u: TestUser): void {
  if (chownedSandboxes.has(sb.dir)) return;
  const dirs = [sb.dir, sb.home, ...['XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_CACHE_HOME', 'XDG_STATE_HOME', 'XDG_RUNTIME_DIR', 'TMPDIR'].map((k) => sb.env[k])];
  for (const d of [...dirs, join(sb.home, '.local')]) if (d !== undefined && existsSync(d)) chownSync(d, u.uid, u.gid);
  chownedSandboxes.add(sb.dir);
}

export interface CliResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

function buildEnv(sb: CliSandbox, opts: CliOptions): Record<string, string> {
  const env: Record<string, string> = { ...sb.env };
  if (opts.root !== undefined) env.S2N_OCI_ROOT = opts.root;
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function assertBuilt(): void {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} not found: run \`npx tsc -p tsconfig.json\` before the e2e tests`);
}

/** Starts the CLI and returns the child (stdio piped); it is killed when the test finishes if still running. */
export function spawnCli(args: string[], opts: CliOptions = {}): ChildProcess {
  const entry = opts.entry ?? CLI_PATH;
  if (opts.entry === undefined) assertBuilt();
  const sb = opts.sandbox ?? cliSandbox();
  const env = buildEnv(sb, opts);
  let cmd = process.execPath;
  let argv = [entry, ...args];
  if (opts.as === 'user') {
    const u = testUser();
    if (!IS_ROOT || u === undefined) throw new Error(`running as ${TEST_USER} needs root and the user (scripts/setup-host.sh --test)`);
    giveSandboxTo(sb, u);
    env.USER = u.name;
    env.LOGNAME = u.name;
    argv = ['--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', cmd, ...argv];
    cmd = 'setpriv';
  }
  if (opts.cgroup2 === true) {
    argv = ['-m', 'sh', '-c', 'umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec "$@"', 'sh', cmd, ...argv];
    cmd = 'unshare';
  }
  const child = spawn(cmd, argv, {
    cwd: opts.cwd ?? sb.dir,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // An early stdin close (EPIPE) is the CLI's business, not an unhandled error here.
  child.stdin?.on('error', () => {});
  if (opts.input !== undefined) child.stdin?.end(opts.input);
  if (child.pid !== undefined) {
    const forget = killOnExit(child.pid);
    child.once('exit', forget);
  }
  try {
    onTestFinished(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  } catch {
    /* outside a test: the exit hook covers it */
  }
  if (opts.timeoutMs !== undefined) {
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('exit', () => clearTimeout(t));
  }
  return child;
}

/** Runs the CLI to completion and collects its output. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const started = Date.now();
  const child = spawnCli(args, { ...opts, timeoutMs: undefined, input: opts.input ?? '' });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 60_000);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolvePromise, reject) => {
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'close' (not 'exit') so all output has been read.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, timedOut, durationMs: Date.now() - started });
    });
  });
}

/** Absolute path inside the repository (fixtures in bundles/, spec/...). */
export function repoPath(...parts: string[]): string {
  return resolve(REPO_ROOT, ...parts);
}

/**
 * A runner error as users see it: exit 125, nothing on stdout, and stderr
 * exactly one `Error: ` line matching `message` then one `hint: ` line
 * (matching `hint` when given). Returns the two lines.
 */
export function expectRunnerError(r: CliResult, message: RegExp, hint?: RegExp): { error: string; hint: string } {
  expect(r.code, r.stderr).toBe(125);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(2);
  const [error = '', hintLine = ''] = lines;
  expect(error).toMatch(/^Error: /);
  expect(error).toMatch(message);
  expect(hintLine).toMatch(/^hint: /);
  if (hint) expect(hintLine).toMatch(hint);
  return { error, hint: hintLine };
}
