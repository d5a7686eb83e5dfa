/**
 * Finds the container's command inside the rootfs before the runtime starts,
 * so "not found" and "not executable" get docker's 127/126 and a clear
 * message. Symlinks are resolved with the rootfs as `/`, never outside it.
 */
import { stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { S2nError } from '../errors.js';
import { entryComponents, resolveComponents } from '../unpack/resolve.js';
import { EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND } from './exit-status.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

async function inspect(rootfs: string, ctrPath: string): Promise<'ok' | 'missing' | 'noexec'> {
  let parts: string[];
  try {
    parts = await resolveComponents(rootfs, entryComponents(ctrPath));
  } catch {
    return 'missing';
  }
  try {
    const st = await stat(join(rootfs, ...parts));
    if (!st.isFile()) return 'noexec';
    return (st.mode & 0o111) !== 0 ? 'ok' : 'noexec';
  } catch {
    return 'missing';
  }
}

/**
 * The command's path inside the container. Throws an S2nError whose
 * `context.exitStatus` is 127 (not found) or 126 (not executable).
 */
export async function checkExecutable(rootfs: string, argv0: string, PATH: string = DEFAULT_PATH, cwd = '/'): Promise<string> {
  if (argv0.includes('/')) {
    const p = posix.resolve(cwd, argv0);
    const r = await inspect(rootfs, p);
    if (r === 'ok') return p;
    throw r === 'missing' ? notFound(argv0, 'no such file or directory') : notExecutable(argv0);
  }
  let noexec = false;
  for (const dir of PATH.split(':')) {
    if (dir === '') continue;
    const p = posix.join(posix.resolve(cwd, dir), argv0);
    const r = await inspect(rootfs, p);
    if (r === 'ok') return p;
    if (r === 'noexec') noexec = true;
  }
  throw notFound(argv0, `executable file not found in $PATH${noexec ? ' (a file of that name exists but is not executable)' : ''}`);
}

function notFound(argv0: string, what: string): S2nError {
  return new S2nError('EUSAGE', `run container: ${argv0}: ${what}`, {
    hint: 'check the command and the image (is the program installed in it? is PATH right?)',
    context: { exitStatus: EXIT_NOT_FOUND, command: argv0 },
  });
}

function notExecutable(argv0: string): S2nError {
  return new S2nError('EUSAGE', `run container: ${argv0}: permission denied`, {
    hint: 'the file is not executable in the image (mode bits, or a directory)',
    context: { exitStatus: EXIT_CANNOT_EXECUTE, command: argv0 },
  });
}
