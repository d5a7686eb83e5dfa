/**
 * The main job, end to end, as the README's first command runs it: build (or
 * reuse) the demo scanner archive without Docker, load it into the store,
 * start the demo target on 127.0.0.1, and scan it with `s2n-oci scan` (with
 * the example external plugin), printing the findings. Uses the real CLI and
 * the user's own store, so `s2n-oci scan` works afterwards too.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startDemoTarget } from '../src/s2n/demo-target.js';
import { BUILTIN_PLUGINS, demoArchiveName } from '../src/s2n/scanner-contract.js';
import { buildDemoImages, defaultDebCache, defaultOutDir, demoScannerDir } from './build-demo-images.js';

const cli = resolve(import.meta.dirname, '..', 'src', 'cli', 's2n-oci.cjs');

function s2n(args: string[]): Promise<number> {
  process.stderr.write(`\n$ s2n-oci ${args.join(' ')}\n`);
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'inherit' });
  return new Promise((res, rej) => {
    child.once('error', rej);
    child.once('exit', (code, signal) => res(code ?? 128 + (signal ? 15 : 0)));
  });
}

async function main(): Promise<number> {
  const outDir = defaultOutDir();
  process.stderr.write(`building the demo scanner images (cached .debs in ${defaultDebCache()}, archives in ${outDir})\n`);
  const built = await buildDemoImages({
    outDir,
    variants: ['prod'],
    cacheDir: defaultDebCache(),
    log: (line) => process.stderr.write(`  ${line}\n`),
  });
  const archive = built.archives.find((a) => a.variant === 'prod')?.path ?? join(outDir, demoArchiveName('prod'));
  if (!existsSync(archive)) throw new Error(`the build did not produce ${archive}`);

  let code = await s2n(['load', '-i', archive]);
  if (code !== 0) return code;

  const target = await startDemoTarget();
  process.stderr.write(`\ndemo target (deliberately vulnerable) on ${target.url}\n`);
  try {
    // Every built-in plugin plus the example external one from the mounted plugin folder.
    const plugins = [...BUILTIN_PLUGINS, 'server_banner'].flatMap((p) => ['-p', p]);
    code = await s2n(['scan', '--plugins', join(demoScannerDir(), 'plugins-example'), '--url', target.url, ...plugins]);
  } finally {
    await target.close();
  }
  return code;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
