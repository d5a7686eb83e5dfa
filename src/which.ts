/**
 * Finding a program as a shell would: a name with a slash is a path,
 * otherwise the first executable in an absolute $PATH entry (relative ones are
 * skipped: they would depend on the working directory). One lookup for the
 * runtimes, newuidmap/newgidmap and the like. Synchronous: a few access()
 * calls on every run's start-up path (see runtime/state.ts).
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

export function which(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes('/')) {
    const p = resolve(name);
    return isExecutable(p) ? p : undefined;
  }
  for (const dir of (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
