/**
 * The demo scanner's prod and dev archives (scripts/build-demo-images.ts),
 * built once per test file into a temp dir. The .debs come from the cache the
 * build-script test keeps in <repo>/.cache/s2n-oci/debs, so only a first run
 * on a machine downloads.
 */
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { buildDemoImages } from '../../scripts/build-demo-images.js';
import { demoArchiveName } from '../../src/s2n/scanner-contract.js';
import { REPO_ROOT } from './cli.js';
import { makeTempDir } from './tmp.js';

export const DEMO_DEB_CACHE = join(REPO_ROOT, '.cache', 's2n-oci', 'debs');

export interface DemoArchives {
  dir: string;
  prod: string;
  dev: string;
  /** Manifest digests, as the archives' index names them. */
  prodDigest: string;
  devDigest: string;
}

let built: Promise<DemoArchives> | undefined;

async function build(): Promise<DemoArchives> {
  const dir = await makeTempDir('s2n-demo-archives-');
  // Readable by the unprivileged test user too, who loads them with its own CLI.
  await chmod(dir, 0o755);
  const r = await buildDemoImages({ outDir: dir, variants: ['prod', 'dev'], cacheDir: DEMO_DEB_CACHE });
  const of = (v: 'prod' | 'dev'): string => {
    const a = r.archives.find((x) => x.variant === v);
    if (!a) throw new Error(`build-demo-images wrote no ${v} archive`);
    return a.manifestDigest;
  };
  for (const v of ['prod', 'dev'] as const) await chmod(join(dir, demoArchiveName(v)), 0o644);
  return { dir, prod: join(dir, demoArchiveName('prod')), dev: join(dir, demoArchiveName('dev')), prodDigest: of('prod'), devDigest: of('dev') };
}

/** Both archives; the first call in a test file builds them, later calls get the same ones. */
export function demoArchives(): Promise<DemoArchives> {
  built ??= build();
  return built;
}
