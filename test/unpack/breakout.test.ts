/**
 * Hostile layers that try to reach outside the rootfs (after containerd's
 * TestBreakouts). Each one checks that the file planted beside the rootfs and
 * the rest of the parent temp dir are untouched.
 */
import { existsSync } from 'node:fs';
import { lstat, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dir, file, hardlink, opaqueWhiteout, symlink, whiteout } from '../helpers/images.js';
import { removeDir } from '../helpers/tmp.js';
import { resolveInRoot } from '../../src/unpack/index.js';
import { apply, applyAll, makeEnv, outside, PLANTED, type Env } from './util.js';

let env: Env;
let before: Awaited<ReturnType<typeof outside>>;
beforeEach(async () => {
  env = await makeEnv();
  before = await outside(env);
});
afterEach(async () => {
  // The common assertion of every breakout test.
  expect(await outside(env)).toEqual(before);
  expect(await readFile(env.planted, 'utf8')).toBe(PLANTED);
  expect((await stat(env.planted)).nlink).toBe(1);
  await removeDir(env.base);
});

const code = async (p: Promise<unknown>): Promise<string | undefined> => {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
};

describe('breakouts', () => {
  it('symlink then write through it (a -> /outside, a/evil)', async () => {
    const target = join(env.base, 'outside');
    await apply(env, [symlink('a', target), file('a/evil', 'evil')]);
    expect(existsSync(target)).toBe(false);
    expect(await readFile(join(env.root, target, 'evil'), 'utf8')).toBe('evil');
    expect((await lstat(join(env.root, 'a'))).isSymbolicLink()).toBe(true);
  });

  it('symlink then write through it across layers', async () => {
    await applyAll(env, [[symlink('a', env.base)], [file('a/planted', 'evil')]]);
    expect(await readFile(join(env.root, env.base, 'planted'), 'utf8')).toBe('evil');
  });

  it('a directory written through, then replaced by a symlink out, then written through again (resolution cache)', async () => {
    const target = join(env.base, 'outside');
    await apply(env, [dir('a'), dir('a/b'), file('a/b/x', 'x'), symlink('a', target), file('a/b/evil', 'evil'), dir('c'), file('c/y', 'y')]);
    await apply(env, [file('c/z', 'z'), symlink('c', env.base), file('c/planted', 'evil2')]);
    expect(existsSync(target)).toBe(false);
    expect(await readFile(join(env.root, target, 'b/evil'), 'utf8')).toBe('evil');
    expect(await readFile(join(env.root, env.base, 'planted'), 'utf8')).toBe('evil2');
    expect(existsSync(join(env.root, target, 'b/x'))).toBe(false);
  });

  it('a whiteout removes a directory written through earlier in the next layer, then a symlink takes its place', async () => {
    await applyAll(env, [[dir('d'), file('d/f', 'f')], [file('d/g', 'g'), whiteout('e'), dir('e'), file('e/h', 'h')], [whiteout('d'), symlink('d', env.base), file('d/planted', 'evil')]]);
    expect(await readFile(join(env.root, env.base, 'planted'), 'utf8')).toBe('evil');
    expect((await lstat(join(env.root, 'd'))).isSymbolicLink()).toBe(true);
  });

  it('symlink to .. chains', async () => {
    await apply(env, [
      symlink('up', '..'),
      symlink('up2', 'up/../up/..'),
      symlink('deep', '../../../../../../../..'),
      file('up/planted', 'evil1'),
      file('up2/x', 'evil2'),
      file('deep/planted2', 'evil3'),
    ]);
    expect(await readFile(join(env.root, 'planted'), 'utf8')).toBe('evil1');
    expect(await readFile(join(env.root, 'x'), 'utf8')).toBe('evil2');
    expect(await readFile(join(env.root, 'planted2'), 'utf8')).toBe('evil3');
  });

  it('symlink loop is refused', async () => {
    expect(await code(apply(env, [symlink('l1', 'l2'), symlink('l2', 'l1'), file('l1/x', 'x')]))).toBe('EUNSAFEPATH');
  });

  it('hardlink to outside (link -> ../../etc/passwd)', async () => {
    expect(await code(apply(env, [hardlink('link', '../../planted')]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [hardlink('link', '../../etc/passwd')]))).toBe('EUNSAFEPATH');
  });

  it('hardlink with an absolute target is taken inside the root', async () => {
    // root/<base>/planted does not exist: the link fails instead of reaching the host file.
    expect(await code(apply(env, [hardlink('link', env.planted)]))).toBe('EARCHIVE');
    await apply(env, [file('etc/passwd', 'inside'), hardlink('link', '/etc/passwd')]);
    expect((await stat(join(env.root, 'link'))).ino).toBe((await stat(join(env.root, 'etc/passwd'))).ino);
  });

  it('hardlink through a symlinked dir', async () => {
    expect(await code(apply(env, [symlink('d', env.base), hardlink('x', 'd/planted')]))).toBe('EARCHIVE');
    expect(await code(apply(env, [symlink('r', '../..'), hardlink('y', 'r/planted')]))).toBe('EARCHIVE');
    expect(existsSync(join(env.root, 'x'))).toBe(false);
  });

  it('hardlink to a symlink links the symlink, not its target', async () => {
    await apply(env, [symlink('s', env.planted), hardlink('h', 's')]);
    expect((await lstat(join(env.root, 'h'))).isSymbolicLink()).toBe(true);
  });

  it('root replaced by a symlink (entry "." or "./")', async () => {
    expect(await code(apply(env, [symlink('.', env.base), file('planted', 'evil')]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [symlink('./', env.base)]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [symlink('/', env.base)]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [file('x', 'x'), hardlink('.', 'x')]))).toBe('EUNSAFEPATH');
    expect((await lstat(env.root)).isDirectory()).toBe(true);
  });

  it('whiteout through a symlink (dir -> /outside, dir/.wh.planted)', async () => {
    await applyAll(env, [[symlink('dir', env.base)], [whiteout('dir/planted'), whiteout('dir/rootfs')]]);
    expect((await lstat(join(env.root, 'dir'))).isSymbolicLink()).toBe(true);
  });

  it('whiteout of a symlink removes the link, not its target', async () => {
    await applyAll(env, [[symlink('p', env.planted), symlink('d', env.base)], [whiteout('p'), whiteout('d')]]);
    expect(existsSync(join(env.root, 'p'))).toBe(false);
    expect(existsSync(join(env.root, 'd'))).toBe(false);
  });

  it('opaque whiteout in a symlinked dir', async () => {
    await applyAll(env, [[symlink('dir', env.base), symlink('rel', '..')], [opaqueWhiteout('dir'), opaqueWhiteout('rel')]]);
  });

  it('absolute symlink then file under it', async () => {
    await apply(env, [symlink('abs', '/'), file('abs/planted', 'evil'), symlink('abs2', env.base), file('abs2/planted', 'evil2')]);
    expect(await readFile(join(env.root, 'planted'), 'utf8')).toBe('evil');
    expect(await readFile(join(env.root, env.base, 'planted'), 'utf8')).toBe('evil2');
  });

  it('file over an existing symlink replaces the link (never written through)', async () => {
    await applyAll(env, [[symlink('f', env.planted), symlink('g', '../planted')], [file('f', 'evil'), file('g', 'evil')]]);
    expect((await lstat(join(env.root, 'f'))).isFile()).toBe(true);
    expect(await readFile(join(env.root, 'g'), 'utf8')).toBe('evil');
  });

  it('directory over an existing symlink replaces the link', async () => {
    await applyAll(env, [[symlink('d', env.base)], [dir('d', { mode: 0o700 })]]);
    expect((await lstat(join(env.root, 'd'))).isDirectory()).toBe(true);
  });

  it('../ names are refused', async () => {
    expect(await code(apply(env, [file('../planted', 'evil')]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [file('a/../../planted', 'evil')]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [dir('../newdir')]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [symlink('../s', '/')]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [whiteout('../planted')]))).toBe('EUNSAFEPATH');
  });

  it('absolute names are taken relative to the root', async () => {
    await apply(env, [file(env.planted, 'evil'), file('/etc/hosts', 'h')]);
    expect(await readFile(join(env.root, env.planted), 'utf8')).toBe('evil');
    expect(await readFile(join(env.root, 'etc/hosts'), 'utf8')).toBe('h');
  });

  it('escaping whiteout names (.wh., .wh.., .wh...) are refused', async () => {
    expect(await code(apply(env, [file('.wh.', '')]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [file('a/.wh..', '')]))).toBe('EUNSAFEPATH');
    expect(await code(apply(env, [file('a/.wh...', '')]))).toBe('EUNSAFEPATH');
  });
});

describe('resolveInRoot', () => {
  it('resolves parents inside the root and never follows the last component', async () => {
    await apply(env, [symlink('a', env.base), symlink('b', '../../..'), symlink('last', '/etc')]);
    expect(await resolveInRoot(env.root, 'a/x')).toBe(join(env.root, env.base, 'x'));
    expect(await resolveInRoot(env.root, 'b/planted')).toBe(join(env.root, 'planted'));
    expect(await resolveInRoot(env.root, '/last')).toBe(join(env.root, 'last'));
    expect(await resolveInRoot(env.root, './')).toBe(env.root);
    await expect(resolveInRoot(env.root, '../x')).rejects.toMatchObject({ code: 'EUNSAFEPATH', context: { entry: '../x' } });
  });
});
