/**
 * Paths inside a root, with chroot semantics (containerd's fs.RootPath, Go's
 * securejoin): names are taken relative to the root, symlinks met on the way
 * are resolved as if the root were `/` (an absolute target restarts at the
 * root, `..` stops at it), and the last component is never followed, so the
 * entry being created replaces whatever is there instead of writing through it.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { S2nError, sysCode } from '../errors.js';

/** Symlinks followed while resolving one path before we call it a loop (Linux allows 40). */
const MAX_HOPS = 255;

export function unsafeEntry(entry: string, detail: string): S2nError {
  return new S2nError('EUNSAFEPATH', `apply layer: entry "${entry}" ${detail}`, {
    hint: 'the layer tries to write outside the image root; the image is damaged or hostile',
    context: { entry },
  });
}

/**
 * The components of an entry name, cleaned lexically: absolute names are taken
 * relative to the root; `.` and empty components dropped; `..` refused when it
 * would climb above the root. `[]` is the root itself.
 */
export function entryComponents(name: string): string[] {
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) throw unsafeEntry(name, 'climbs above the root');
      out.pop();
    } else out.push(c);
  }
  return out;
}

/**
 * Resolve `parts` (all followed, symlinks included) under `root`: the real
 * components, relative to the root, none of them a symlink. Components that
 * do not exist are kept as they are. Synchronous: it is called per tar entry.
 */
export function resolveComponentsSync(root: string, parts: readonly string[], entry = parts.join('/')): string[] {
  const out: string[] = [];
  const queue = [...parts];
  let hops = 0;
  let missing = false;
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      out.pop(); // at the root, `..` is the root
      missing = false;
      continue;
    }
    // Below a missing component nothing exists: no need to ask.
    let link: string | undefined;
    if (!missing) {
      const p = join(root, ...out, c);
      try {
        const st = lstatSync(p, { throwIfNoEntry: false });
        if (st === undefined) missing = true;
        else if (st.isSymbolicLink()) link = readlinkSync(p);
      } catch (e) {
        if (sysCode(e) !== 'ENOTDIR') throw e;
        missing = true;
      }
    }
    if (link === undefined) {
      out.push(c);
      continue;
    }
    if (++hops > MAX_HOPS) throw unsafeEntry(entry, 'goes through too many symlinks (a loop?)');
    if (link.startsWith('/')) out.length = 0;
    queue.unshift(...link.split('/'));
  }
  return out;
}

/** resolveComponentsSync as a promise (the API other modules use). */
export async function resolveComponents(root: string, parts: readonly string[], entry = parts.join('/')): Promise<string[]> {
  return resolveComponentsSync(root, parts, entry);
}

/**
 * The host path of entry `name` under `root`: the parent resolved inside the
 * root, the last component not followed. Throws EUNSAFEPATH for names that
 * climb above the root.
 */
export async function resolveInRoot(root: string, name: string): Promise<string> {
  const parts = entryComponents(name);
  if (parts.length === 0) return root;
  const parent = await resolveComponents(root, parts.slice(0, -1), name);
  return join(root, ...parent, parts[parts.length - 1]!);
}
