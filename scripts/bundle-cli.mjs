#!/usr/bin/env node
/**
 * Build step after tsc and build-validators: bundles the CLI (dist/src/cli/
 * program.js and everything it imports) into one CommonJS file,
 * dist/src/cli/bundle.cjs, which the installed command s2n-oci.cjs loads with
 * a V8 code cache (why: see src/cli/s2n-oci.cts). Then writes that cache
 * after a training run (src/cli/warm-up.ts), marked as the build's.
 *
 * Left out of the bundle: the native addons (node-pty, zstd-napi), loaded
 * from node_modules when a command needs them. undici is in: its ~60 files
 * cost a registry command ~25 ms to resolve and compile, and inside the
 * bundle it is evaluated only by the commands that import it. The validators
 * build-validators.mjs generated are bundled and handed to validate.js.
 * Every module keeps its own import.meta.url (the bundle rewrites it to the
 * module's dist/ file), so paths found relative to a module, such as the
 * unpack worker, the vendored schemas and bundles/, stay as they are.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const cliDir = join(repo, 'dist', 'src', 'cli');
const outfile = join(cliDir, 'bundle.cjs');
const { SCHEMA_FILES, schemaFolder } = await import(join(repo, 'dist', 'src', 'oci', 'schemas.js'));
const SCHEMA_FOLDERS = [...new Set(Object.keys(SCHEMA_FILES).map(schemaFolder))];

/** import.meta.url of each dist/ module, as a URL computed from the bundle's own location at run time. */
const moduleUrls = {
  name: 's2n-module-urls',
  setup(b) {
    b.onLoad({ filter: /[\\/]dist[\\/]src[\\/].*\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const rel = relative(cliDir, args.path);
      const contents = text.replaceAll('import.meta.url', `__s2nModuleUrl(${JSON.stringify(rel)})`);
      if (contents.includes('import.meta')) throw new Error(`${args.path}: only import.meta.url is supported in the bundle`);
      return { contents, loader: 'js' };
    });
  },
};

// V8 checks a cache against the source's length only: never keep one from an earlier build.
rmSync(`${outfile}.v8cache`, { force: true });
rmSync(`${outfile}.v8cache.from-build`, { force: true });

// The entry: the CLI, with the generated validators handed to validate.js
// (bundled, unlike the require() by path it does otherwise; loaded on first use).
const entry = `
import { providePrecompiled } from './oci/validate.js';
${SCHEMA_FOLDERS.map((f) => `providePrecompiled('${f}', () => require('./oci/validators.${f}.generated.cjs'));`).join('\n')}
export { main } from './cli/program.js';
// Both evaluated only in the process that uses them (esbuild makes a bundled import() lazy).
export const warmUp = () => import('./cli/warm-up.js').then((m) => m.warmUp());
export const unpackWorker = () => import('./unpack/worker.js').then((m) => m.runUnpackWorker());
`;

const result = await build({
  stdin: { contents: entry, resolveDir: join(repo, 'dist', 'src'), sourcefile: 'bundle-entry.js', loader: 'js' },
  outfile,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['node-pty', 'zstd-napi'],
  // Smaller source, smaller cache; names kept so --debug stacks stay readable.
  minifyWhitespace: true,
  // Licence comments go to bundle.cjs.LEGAL.txt: they are the only non-ASCII text, and an
  // all-ASCII bundle can be read as latin1 (checked below; why: src/cli/s2n-oci.cts).
  legalComments: 'external',
  charset: 'ascii',
  minifySyntax: true,
  banner: {
    js: "const __s2nModuleUrl = (rel) => require('node:url').pathToFileURL(require('node:path').join(__dirname, rel)).href;",
  },
  plugins: [moduleUrls],
  logLevel: 'warning',
  metafile: true,
});

const text = readFileSync(outfile, 'utf8');
const nonAscii = /[^\x00-\x7f]/.exec(text);
if (nonAscii) throw new Error(`bundle-cli: the bundle has a non-ASCII character (${JSON.stringify(nonAscii[0])} at ${nonAscii.index}); s2n-oci.cjs reads it as latin1`);
// The bundle runs in a vm.Script, which has no import(): an external package must be require()d.
const dynamic = /\bimport\((["'])([^"']+)\1\)/.exec(text);
if (dynamic) throw new Error(`bundle-cli: the bundle has import(${dynamic[1]}${dynamic[2]}${dynamic[1]}); load that package with createRequire() instead`);

const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`bundle-cli: wrote ${outfile} (${Object.keys(result.metafile.inputs).length} modules, ${Math.round(bytes / 1024)} KiB)`);

// A training run writes the code cache beside the bundle.
execFileSync(process.execPath, [join(cliDir, 's2n-oci.cjs')], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, S2N_OCI_CODE_CACHE: 'warm-up' } });
// The first real run or scan replaces this cache with a fuller one, and removes the marker (see s2n-oci.cts).
writeFileSync(`${outfile}.v8cache.from-build`, 'The code cache beside this file comes from the build (src/cli/warm-up.ts); the first run or scan replaces it.\n');
console.log(`bundle-cli: wrote ${outfile}.v8cache`);
