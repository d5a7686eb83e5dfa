/**
 * The air-gapped install: `scripts/pack-offline.sh` builds one tarball with
 * every runtime dependency bundled and the native addons prebuilt; npm then
 * installs it globally and into an empty project with the registry
 * unreachable (127.0.0.1:9, --offline, an empty cache), no Node headers
 * (nodedir=/nonexistent) and a PATH holding nothing but `node`, so neither a
 * download nor node-gyp, make, a C++ compiler or python could have been used.
 * The installed CLI then runs, and loads a zstd archive with no `zstd` program
 * on PATH, which only the bundled zstd-napi addon can decompress (Node 20's
 * zlib has no zstd).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ociArchive } from '../helpers/archives.js';
import { repoPath, runCli, type CliResult } from '../helpers/cli.js';
import { smallImage } from '../helpers/images.js';
import { makeTempDir, removeDir } from '../helpers/tmp.js';

const run = promisify(execFile);
const VERSION = (JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string }).version;

/** npm's own entry script, run with `node` so the install needs nothing else on PATH. */
function npmCli(): string {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(d, 'npm');
    if (d !== '' && existsSync(p)) return realpathSync(p);
  }
  throw new Error('npm not found on PATH');
}

/** Every file under `dir` (relative paths), not descending into node_modules. */
function ownFiles(dir: string, base = dir): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) {
      if (e !== 'node_modules') out.push(...ownFiles(p, base));
    } else out.push(relative(base, p));
  }
  return out;
}

interface Installed {
  /** The package dir: <prefix>/lib/node_modules/s2n-oci or <project>/node_modules/s2n-oci. */
  pkg: string;
  /** The `s2n-oci` command npm linked. */
  bin: string;
}

describe('offline install (air-gapped): one bundled tarball, no registry, no compiler, no headers', () => {
  let work = '';
  let tarball = '';
  /** A PATH holding only `node`. */
  let bareBin = '';
  let npmEnv: Record<string, string> = {};
  let global: Installed;
  let local: Installed;

  async function npmInstall(args: string[], cwd: string): Promise<void> {
    try {
      await run(process.execPath, [npmCli(), 'install', '--offline', '--no-audit', '--no-fund', ...args, tarball], { cwd, env: npmEnv, timeout: 60_000 });
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string };
      throw new Error(`npm install ${args.join(' ')} failed:\n${x.stdout ?? ''}\n${x.stderr ?? ''}`, { cause: e });
    }
  }

  beforeAll(async () => {
    work = await makeTempDir('s2n-offline-');
    // dist/ is built before the tests run (as for every e2e test): reuse it.
    const packed = await run('bash', [repoPath('scripts/pack-offline.sh'), '--no-build', '--out', join(work, 'out')], { timeout: 90_000 });
    tarball = packed.stdout.trim().split('\n').pop() ?? '';

    bareBin = join(work, 'bin');
    mkdirSync(bareBin);
    symlinkSync(process.execPath, join(bareBin, 'node'));
    const empty = (name: string): string => {
      const p = join(work, name);
      writeFileSync(p, '');
      return p;
    };
    mkdirSync(join(work, 'home'));
    npmEnv = {
      PATH: bareBin,
      HOME: join(work, 'home'),
      // No npmrc of this machine (its nodedir, registry, cache) takes part.
      npm_config_userconfig: empty('user.npmrc'),
      npm_config_globalconfig: empty('global.npmrc'),
      npm_config_registry: 'http://127.0.0.1:9/',
      npm_config_cache: join(work, 'npm-cache'),
      npm_config_nodedir: '/nonexistent',
      npm_config_update_notifier: 'false',
    };
    const prefix = join(work, 'prefix');
    const project = join(work, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'air-gapped-host', version: '1.0.0', private: true }));
    await Promise.all([npmInstall(['-g', '--prefix', prefix], work), npmInstall([], project)]);
    global = { pkg: join(prefix, 'lib', 'node_modules', 's2n-oci'), bin: join(prefix, 'bin', 's2n-oci') };
    local = { pkg: join(project, 'node_modules', 's2n-oci'), bin: join(project, 'node_modules', '.bin', 's2n-oci') };
  }, 150_000);

  afterAll(async () => {
    if (work !== '') await removeDir(work);
  });

  it('the tarball is one platform-named file of a few MB', () => {
    expect(tarball).toMatch(new RegExp(`/s2n-oci-${VERSION.replace(/\./g, '\\.')}-${process.platform}-${process.arch}\\.tgz$`));
    const size = statSync(tarball).size;
    console.log(`offline tarball: ${tarball.split('/').pop()} ${(size / 1048576).toFixed(2)} MiB`);
    // Bundling a dev tool (typescript alone is over 20 MB unpacked) would blow this.
    expect(size).toBeLessThan(8 * 1048576);
  });

  for (const where of ['global', 'local'] as const) {
    it(`${where} install: \`s2n-oci --version\` through npm's bin link with only node on PATH`, async () => {
      const { bin } = where === 'global' ? global : local;
      const r = await run(bin, ['--version'], { env: { PATH: bareBin } });
      expect(r.stdout.trim()).toBe(VERSION);
    });
  }

  it('the installed package holds the build, spec/ and bundles/, and no tests or TypeScript sources', () => {
    const files = ownFiles(global.pkg);
    // The command, the bundle it runs and the bundle's code cache, built here for the Node the tests run on.
    for (const f of ['dist/src/cli/s2n-oci.cjs', 'dist/src/cli/bundle.cjs', 'dist/src/cli/bundle.cjs.v8cache']) expect(files).toContain(f);
    expect(files).toContain('README.md');
    expect(files.some((f) => f.startsWith('spec/'))).toBe(true);
    expect(files.some((f) => f.startsWith('bundles/profiles/'))).toBe(true);
    expect(files.filter((f) => /^(src|test|dist\/test|dist\/bench)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([]);
    const bundled = readdirSync(join(global.pkg, 'node_modules'));
    for (const dev of ['typescript', 'vitest', '@types', 'node-gyp', 'prebuild-install', 'node-addon-api']) expect(bundled).not.toContain(dev);
    // The addons come compiled, without what would let npm try to compile them.
    for (const addon of ['node-pty', 'zstd-napi']) {
      const dir = join(global.pkg, 'node_modules', addon);
      expect(existsSync(join(dir, 'binding.gyp')), addon).toBe(false);
      const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string>; gypfile?: boolean };
      expect(pj.scripts?.install, addon).toBeUndefined();
      expect(pj.gypfile, addon).toBe(false);
    }
  });

  it('the bundled native addons load and work: zstd-napi round-trips, node-pty runs a command in a terminal', async () => {
    const probe = `
      const z = require(process.argv[1] + '/node_modules/zstd-napi');
      const pty = require(process.argv[1] + '/node_modules/node-pty');
      const text = z.decompress(z.compress(Buffer.from('zstd from the bundle'))).toString();
      const p = pty.spawn('/bin/echo', ['pty from the bundle'], { cols: 80, rows: 24 });
      let out = '';
      p.onData((d) => (out += d));
      p.onExit((e) => setTimeout(() => console.log(JSON.stringify({ text, out, code: e.exitCode })), 50));
    `;
    for (const pkg of [global.pkg, local.pkg]) {
      const r = await run(process.execPath, ['-e', probe, pkg], { env: { PATH: bareBin }, timeout: 20_000 });
      const got = JSON.parse(r.stdout) as { text: string; out: string; code: number };
      expect(got.text).toBe('zstd from the bundle');
      expect(got.out).toContain('pty from the bundle');
      expect(got.code).toBe(0);
    }
  });

  it('the installed CLI reports the host (`info --json`) and loads a zstd archive with no zstd program on PATH', async () => {
    const main = join(global.pkg, 'dist', 'src', 'cli', 's2n-oci.cjs');
    const cli = (args: string[]): Promise<CliResult> => runCli(args, { entry: main, env: { PATH: bareBin } });
    const info = await cli(['info', '--json']);
    expect(info.code, info.stderr).toBe(0);
    const report = JSON.parse(info.stdout) as { user?: { uid?: number }; store?: string };
    expect(report.user?.uid).toBe(process.getuid?.());
    expect(typeof report.store).toBe('string');

    const img = await smallImage({ marker: 'offline' });
    // zstd-napi from the repository compresses it; only the installed one can undo it.
    const zstd = createRequire(import.meta.url)('zstd-napi') as { compress: (b: Buffer) => Buffer };
    const archive = join(work, 'image.tar.zst');
    writeFileSync(archive, zstd.compress(ociArchive([{ image: img, refName: 'localhost/offline:1' }])));
    const load = await cli(['load', '--json', '-i', archive]);
    expect(load.code, load.stderr).toBe(0);
    expect(JSON.parse(load.stdout)).toEqual([expect.objectContaining({ name: 'localhost/offline:1', digest: img.manifestDigest })]);
  });
});
