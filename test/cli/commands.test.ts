/**
 * Lazy command loading (src/cli/commands.ts) and what the built CLI loads at
 * start: the root help must read as if every command were loaded, and
 * commands that do not talk to a registry must not load undici or ajv.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS, buildProgram, invokedCommand, rootCommand } from '../../src/cli/commands.js';
import { ContentStore } from '../../src/store/store.js';
import { cliSandbox, runCli, tempDir } from '../helpers/cli.js';
import { smallImage } from '../helpers/images.js';

const argv = (...args: string[]): string[] => ['node', 's2n-oci', ...args];

describe('lazy commands', () => {
  it('shows the same root help as with every command loaded', async () => {
    const lazy = await buildProgram(argv('--help'));
    const full = await buildProgram(argv('--help'), { everything: true });
    expect(lazy.helpInformation()).toBe(full.helpInformation());
    expect(full.commands.map((c) => c.name())).toEqual(COMMANDS.map((c) => c.name));
  });

  it('loads the invoked command only, by name or alias, also for `help NAME`', async () => {
    const defined = async (...args: string[]): Promise<string[]> =>
      (await buildProgram(argv(...args))).commands.filter((c) => c.registeredArguments.length > 0 || c.options.length > 0).map((c) => c.name());
    expect(await defined('--root', '/tmp/x', 'pull', 'alpine')).toEqual(['pull']);
    expect(await defined('ls')).toEqual(['images']);
    expect(await defined('help', 'rmi')).toEqual(['rmi']);
    expect(await defined('--help')).toEqual([]);
  });

  it('finds the command the way commander does', () => {
    const p = rootCommand();
    expect(invokedCommand(p, ['pull', 'x'])).toBe('pull');
    expect(invokedCommand(p, ['--root', 'pull', 'images'])).toBe('images');
    expect(invokedCommand(p, ['--root=/r', '--debug', 'inspect', 'a'])).toBe('inspect');
    expect(invokedCommand(p, ['help', 'login'])).toBe('login');
    expect(invokedCommand(p, ['--', 'logout', 'r'])).toBe('logout');
    expect(invokedCommand(p, ['-V'])).toBeUndefined();
  });
});

/** Runs the built CLI with a preload that records which packages and which Node built-ins it loaded. */
async function loadedPackages(args: string[]): Promise<{ packages: string[]; files: string[]; builtins: string[]; code: number | null; stderr: string }> {
  const dir = tempDir();
  const out = join(dir, 'loaded.json');
  const preload = join(dir, 'record.cjs');
  // ESM imports of CommonJS packages go through require.cache too; process.moduleLoadList names the built-ins.
  writeFileSync(
    preload,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify({ files: Object.keys(require.cache), builtins: process.moduleLoadList })));\n`,
  );
  const r = await runCli(args, { env: { NODE_OPTIONS: `--require ${preload}` } });
  const loaded = JSON.parse(readFileSync(out, 'utf8')) as { files: string[]; builtins: string[] };
  const packages = [...new Set(loaded.files.flatMap((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1] ?? []))].sort();
  const builtins = loaded.builtins.flatMap((m) => /^NativeModule (.+)$/.exec(m)?.[1] ?? []);
  return { packages, files: loaded.files, builtins, code: r.code, stderr: r.stderr };
}

/** What only the registry client (undici) brings in. */
const HTTP_STACK = ['http', 'tls', 'http2'];

describe('startup of the built CLI', () => {
  // Everything is inside the bundle; a module of it is evaluated only when its command needs it.
  it('--help loads nothing from node_modules and no HTTP stack', async () => {
    const r = await loadedPackages(['--help']);
    expect(r.code).toBe(0);
    expect(r.packages).toEqual([]);
    expect(r.builtins.filter((b) => HTTP_STACK.includes(b))).toEqual([]);
  });

  it('images and inspect validate with the bundled precompiled validators, without the HTTP stack or the ajv compiler', async () => {
    const sb = cliSandbox();
    const img = await smallImage();
    const store = await ContentStore.open(sb.root);
    for (const [digest, bytes] of img.blobs) await store.putBytes({ ...img.descriptor, digest, size: bytes.length }, bytes);
    await store.putBytes(img.descriptor, img.manifestBytes);
    await store.tag('example.com/app:1', img.descriptor);

    for (const args of [['images'], ['inspect', 'example.com/app:1']]) {
      const r = await loadedPackages(args);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.packages).toEqual([]);
      expect(r.files.filter((f) => f.endsWith('.generated.cjs'))).toEqual([]);
      expect(r.builtins.filter((b) => HTTP_STACK.includes(b))).toEqual([]);
    }
  });

  it('pull brings in the HTTP stack (the probe above can see it)', async () => {
    const r = await loadedPackages(['pull', '127.0.0.1:9/nothing:here']);
    expect(r.code).toBe(125);
    expect(r.builtins).toEqual(expect.arrayContaining(HTTP_STACK));
  });
});
