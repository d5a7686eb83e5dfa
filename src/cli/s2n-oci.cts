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
 * run (warm-up.ts), so that the run path is in it, and leaves a marker: the
 * training run cannot start containers, so the first real `run` or `scan`
 * (on a writable install) rewrites the cache with what it compiled, ~3 ms
 * off every later start, and removes the marker. Without a bundle (a
 * tsc-only build), main.js runs.
 */
import { accessSync, constants, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

interface CliBundle {
  /** Resolves with the command whose action ran. */
  main(argv: string[], launch: { codeCache: CodeCacheState; cachePath: string }): Promise<string | undefined>;
  /** The build's training run for the cache (src/cli/warm-up.ts). */
  warmUp(): Promise<void>;
  /** The rootless unpack worker (src/unpack/worker.ts), which src/rootfs/build.ts starts as this command. */
  unpackWorker(): Promise<void>;
}

type CodeCacheState = 'accepted' | 'rejected' | 'none';

/** Set by the build (scripts/bundle-cli.mjs): run warmUp() instead of the CLI, then write the cache. */
const WARM_UP = process.env.S2N_OCI_CODE_CACHE === 'warm-up';
/** Set by src/rootfs/build.ts: this process is the unpack worker, not the CLI. */
const UNPACK_WORKER = process.env.S2N_OCI_INTERNAL_ENTRY === 'unpack-worker';

const BUNDLE = join(__dirname, 'bundle.cjs');
const CACHE = `${BUNDLE}.v8cache`;
/** Written by the build beside its cache: "replace me after a real run". */
const FROM_BUILD = `${CACHE}.from-build`;
/** The commands whose start-up matters, and which the build's training run cannot fully exercise. */
const REFRESHED_BY = new Set(['run', 'scan']);

function readCache(): Buffer | undefined {
  try {
    return readFileSync(CACHE);
  } catch {
    return undefined;
  }
}

function writeCache(script: Script): boolean {
  const tmp = `${CACHE}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, CACHE);
    return true;
  } catch {
    // A read-only install: every start compiles, which is correct, only slower.
    rmSync(tmp, { force: true });
    return false;
  }
}

let cacheWriteScheduled = false;

/** At exit, so the functions this run compiled are in the cache too. */
function writeCacheAtExit(script: Script, then?: () => void): void {
  if (cacheWriteScheduled) return;
  cacheWriteScheduled = true;
  process.once('exit', () => {
    if (writeCache(script)) then?.();
  });
}

/** After the first real run or scan, replace the build's cache, where this user may. */
function refreshBuildCache(script: Script, ran: string | undefined): void {
  if (ran === undefined || !REFRESHED_BY.has(ran) || !existsSync(FROM_BUILD)) return;
  try {
    accessSync(__dirname, constants.W_OK);
  } catch {
    return; // not ours to rewrite: keep the build's
  }
  writeCacheAtExit(script, () => rmSync(FROM_BUILD, { force: true }));
}

function loadBundle(): { bundle: CliBundle; script: Script; codeCache: CodeCacheState } {
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
  // The worker runs inside a user namespace, as an id the install may not belong to: it leaves the cache alone.
  if (WARM_UP || (!UNPACK_WORKER && script.cachedDataRejected !== false)) writeCacheAtExit(script);
  const codeCache: CodeCacheState = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
  if (process.env.S2N_OCI_TIMING === '1') {
    process.stderr.write(`s2n-oci timing ${performance.now().toFixed(1)} ms bundle loaded (code cache ${codeCache})\n`);
  }
  if (typeof mod.exports.main !== 'function' || typeof mod.exports.warmUp !== 'function' || typeof mod.exports.unpackWorker !== 'function') {
    throw new Error(`${BUNDLE} is not the CLI bundle; rebuild s2n-oci (npm run build)`);
  }
  return { bundle: mod.exports as CliBundle, script, codeCache };
}

function start(): Promise<void> {
  if (!existsSync(BUNDLE)) return import(UNPACK_WORKER ? '../unpack/worker-main.js' : './main.js').then(() => undefined);
  const { bundle, script, codeCache } = loadBundle();
  if (WARM_UP) return bundle.warmUp();
  if (UNPACK_WORKER) return bundle.unpackWorker();
  return bundle.main(process.argv, { codeCache, cachePath: CACHE }).then((ran) => refreshBuildCache(script, ran));
}

start().catch((e: unknown) => {
  // The CLI reports its own errors; this is only for a broken installation.
  process.stderr.write(`s2n-oci: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 125;
});
