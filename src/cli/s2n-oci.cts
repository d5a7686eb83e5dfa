#!/usr/bin/env node
/**
 * The installed `s2n-oci` command. It runs bundle.cjs (the whole CLI but
 * the native addons, in one CommonJS file written by
 * scripts/bundle-cli.mjs) with a V8 code cache beside it, because start-up is
 * what a container runner is judged on: tsc's ~50 ES modules cost ~35 ms to
 * resolve, read and compile on every start, the bundle without a cache ~20 ms,
 * with the cache ~5 ms. Node 20 has no built-in compile cache
 * (module.enableCompileCache() came in 22.1), hence vm.Script's cachedData.
 *
 * V8 checks the cache against its own version, flags and the source, and
 * rejects a stale one; then the bundle is compiled normally and a fresh cache
 * is written on exit where the install is writable (rename: concurrent runs
 * never see half a file). The build writes the first cache after a training
 * run (warm-up.ts), so that the run path is in it. Without a bundle (a
 * tsc-only build), main.js runs.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

interface CliBundle {
  main(argv: string[]): Promise<void>;
  /** The build's training run for the cache (src/cli/warm-up.ts). */
  warmUp(): Promise<void>;
}

/** Set by the build (scripts/bundle-cli.mjs): run warmUp() instead of the CLI, then write the cache. */
const WARM_UP = process.env.S2N_OCI_CODE_CACHE === 'warm-up';

const BUNDLE = join(__dirname, 'bundle.cjs');
const CACHE = `${BUNDLE}.v8cache`;

function readCache(): Buffer | undefined {
  try {
    return readFileSync(CACHE);
  } catch {
    return undefined;
  }
}

function writeCache(script: Script): void {
  const tmp = `${CACHE}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, CACHE);
  } catch {
    // A read-only install: every start compiles, which is correct, only slower.
  }
}

function loadBundle(): CliBundle {
  const cachedData = readCache();
  // latin1: the build checks the bundle is all ASCII, and latin1 skips UTF-8 decoding (~1-2 ms for 1.4 MB).
  const source = readFileSync(BUNDLE, 'latin1');
  // CommonJS's own wrapper, so the bundle sees the usual module variables.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: BUNDLE,
    ...(cachedData ? { cachedData } : {}),
  });
  const mod: { exports: Partial<CliBundle> } = { exports: {} };
  const wrapper = script.runInThisContext() as (e: object, r: NodeRequire, m: object, f: string, d: string) => void;
  wrapper.call(mod.exports, mod.exports, createRequire(BUNDLE), mod, BUNDLE, dirname(BUNDLE));
  // Written at exit, so the functions this run compiled are in it too.
  if (WARM_UP || script.cachedDataRejected !== false) process.once('exit', () => writeCache(script));
  if (process.env.S2N_OCI_TIMING === '1') {
    const cache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
    process.stderr.write(`s2n-oci timing ${performance.now().toFixed(1)} ms bundle loaded (code cache ${cache})\n`);
  }
  if (typeof mod.exports.main !== 'function' || typeof mod.exports.warmUp !== 'function') {
    throw new Error(`${BUNDLE} is not the CLI bundle; rebuild s2n-oci (npm run build)`);
  }
  return mod.exports as CliBundle;
}

function start(): Promise<void> {
  if (!existsSync(BUNDLE)) return import('./main.js').then(() => undefined);
  const bundle = loadBundle();
  return WARM_UP ? bundle.warmUp() : bundle.main(process.argv);
}

start().catch((e: unknown) => {
  // The CLI reports its own errors; this is only for a broken installation.
  process.stderr.write(`s2n-oci: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 125;
});
