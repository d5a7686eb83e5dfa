/**
 * The installed command, dist/src/cli/s2n-oci.cjs: it runs the bundle with
 * its V8 code cache, survives a stale or damaged cache (rewriting it), and
 * falls back to the unbundled main.js when there is no bundle. The copies
 * live in a temp dir, so the repository's own cache is never touched.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { busyboxImage, writeImageArchive } from '../helpers/busybox-image.js';
import { CAN_RUN_AS_USER, CLI_PATH, cliSandbox, IS_ROOT, runCli, type CliResult } from '../helpers/cli.js';
import { runProcess } from '../helpers/process.js';

const CLI_DIR = join(CLI_PATH, '..');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 's2n-launcher-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the command and its bundle (no cache) in a fresh directory. */
function copyCommand(withBundle = true): { cli: string; cache: string } {
  mkdirSync(join(dir, 'cli'));
  copyFileSync(join(CLI_DIR, 's2n-oci.cjs'), join(dir, 'cli', 's2n-oci.cjs'));
  if (withBundle) copyFileSync(join(CLI_DIR, 'bundle.cjs'), join(dir, 'cli', 'bundle.cjs'));
  return { cli: join(dir, 'cli', 's2n-oci.cjs'), cache: join(dir, 'cli', 'bundle.cjs.v8cache') };
}

async function version(cli: string): Promise<{ out: string; cache: string | undefined }> {
  const r = await runProcess(process.execPath, [cli, '--version'], { env: { ...process.env, S2N_OCI_TIMING: '1' } });
  expect(r.code, r.stderr).toBe(0);
  return { out: r.stdout.trim(), cache: /code cache (\w+)/.exec(r.stderr)?.[1] };
}

describe('s2n-oci.cjs, the installed command', () => {
  it('the build leaves a cache that this Node accepts', async () => {
    const r = await runCli(['--version'], { env: { S2N_OCI_TIMING: '1' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('code cache accepted');
  });

  it.runIf(CAN_RUN_AS_USER)('an unprivileged user, who cannot write the install, uses the same cache', async () => {
    const r = await runCli(['--version'], { as: 'user', env: { S2N_OCI_TIMING: '1' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('code cache accepted');
  });

  it('without a cache it runs, writes one, and the next start uses it', async () => {
    const { cli, cache } = copyCommand();
    expect(await version(cli)).toEqual({ out: '0.1.0', cache: 'none' });
    expect(statSync(cache).size).toBeGreaterThan(1000);
    expect(await version(cli)).toEqual({ out: '0.1.0', cache: 'accepted' });
  });

  it('a damaged cache is rejected by V8, the command still works, and the cache is rewritten', async () => {
    const { cli, cache } = copyCommand();
    writeFileSync(cache, Buffer.alloc(4096, 7));
    expect(await version(cli)).toEqual({ out: '0.1.0', cache: 'rejected' });
    expect(readFileSync(cache).equals(Buffer.alloc(4096, 7))).toBe(false);
    expect(await version(cli)).toEqual({ out: '0.1.0', cache: 'accepted' });
  });

  it('a cache it cannot write is no error: every start compiles', async () => {
    const { cli, cache } = copyCommand();
    mkdirSync(cache); // a directory where the file would go: the write fails, whoever we run as
    expect((await version(cli)).out).toBe('0.1.0');
    expect((await version(cli)).out).toBe('0.1.0');
  });

  it.runIf(IS_ROOT)("the build's cache is replaced after the first real run, not after other commands", async () => {
    // A copy laid out like the install (dist/src/cli beside bundles/), so the bundle finds what it needs.
    const cliDir = join(dir, 'dist', 'src', 'cli');
    mkdirSync(cliDir, { recursive: true });
    for (const f of ['s2n-oci.cjs', 'bundle.cjs', 'bundle.cjs.v8cache']) copyFileSync(join(CLI_DIR, f), join(cliDir, f));
    symlinkSync(join(CLI_DIR, '..', '..', '..', 'bundles'), join(dir, 'bundles'));
    const entry = join(cliDir, 's2n-oci.cjs');
    const cache = join(cliDir, 'bundle.cjs.v8cache');
    // As the build leaves it (the repository's own marker is gone once any test has run a container).
    const marker = `${cache}.from-build`;
    writeFileSync(marker, 'from the build\n');
    const built = readFileSync(cache);

    const sb = cliSandbox();
    chmodSync(sb.dir, 0o755);
    const archive = await writeImageArchive(sb.dir, await busyboxImage(), 'localhost/launcher/box:1');
    expect((await runCli(['load', '-i', archive], { entry })).code).toBe(0);
    expect(existsSync(marker)).toBe(true); // load is not a run
    expect(readFileSync(cache).equals(built)).toBe(true);

    const run = (): Promise<CliResult> => runCli(['run', '--runtime', 'runc', 'localhost/launcher/box:1', 'true'], { entry, env: { S2N_OCI_TIMING: '1' } });
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(marker)).toBe(false);
    expect(readFileSync(cache).equals(built)).toBe(false);
    const second = await run();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('code cache accepted');
  });

  it('info reports the start-up; a rejected cache its user cannot rewrite is a problem with its fix', async () => {
    const ok = await runCli(['info', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { startup: unknown }).startup).toMatchObject({ bundled: true, codeCache: 'accepted' });

    const { cli, cache } = copyCommand();
    writeFileSync(cache, Buffer.alloc(4096, 7));
    const args = ['info', '--json'];
    // As root the copy is writable (the cache is rewritten, no problem); as the test user it is not.
    const r = CAN_RUN_AS_USER
      ? (chmodSync(dir, 0o755), chmodSync(join(dir, 'cli'), 0o755), await runCli(args, { entry: cli, as: 'user' }))
      : await runCli(args, { entry: cli });
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { startup: { codeCache: string; cacheWritable: boolean }; problems: Array<{ message: string; fix: string }> };
    expect(report.startup.codeCache).toBe('rejected');
    const problem = report.problems.find((p) => p.message.includes('code cache'));
    if (report.startup.cacheWritable) expect(problem).toBeUndefined();
    else expect(problem?.fix).toContain(`as the owner of ${join(dir, 'cli')}`);
    expect(report.startup.cacheWritable).toBe(!CAN_RUN_AS_USER);
  });

  it('without a bundle (a tsc-only build) it runs main.js beside it', async () => {
    const { cli } = copyCommand(false);
    writeFileSync(join(dir, 'cli', 'main.js'), "process.stdout.write('unbundled ' + process.argv.slice(2).join(' '));\n");
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    const r = await runProcess(process.execPath, [cli, 'images', '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('unbundled images -q');
    // The unpack worker likewise, from its own unbundled entry.
    mkdirSync(join(dir, 'unpack'));
    writeFileSync(join(dir, 'unpack', 'worker-main.js'), "process.stdout.write('unbundled worker');\n");
    const w = await runProcess(process.execPath, [cli], { env: { ...process.env, S2N_OCI_INTERNAL_ENTRY: 'unpack-worker' } });
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toBe('unbundled worker');
  });
});
