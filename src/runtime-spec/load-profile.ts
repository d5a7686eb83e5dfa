/** The one file read of runtime-spec: a named profile from the bundles folder. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S2nError, sysCode } from '../errors.js';
import { DEFAULT_PROFILE, PROFILE_NAME, parseProfile, type Profile } from './profile.js';

/** The package's bundles/ folder: the nearest one above this module holding profiles/ (works from src/ and dist/src/). */
export function findBundlesDir(start: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start; ; ) {
    const candidate = join(dir, 'bundles');
    if (existsSync(join(candidate, 'profiles'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new S2nError('EINTERNAL', `load profiles: no bundles/profiles folder above ${start}`, { hint: 'the installation is incomplete; reinstall s2n-oci' });
    }
    dir = parent;
  }
}

/** `bundlesDir` is the package's bundles/ folder; profiles are bundles/profiles/NAME.json. 'default' is built in. */
export function loadProfile(name: string, bundlesDir: string = findBundlesDir()): Profile {
  if (name === 'default') return DEFAULT_PROFILE;
  const dir = join(bundlesDir, 'profiles');
  const available = (): string[] => {
    try {
      return ['default', ...readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5))];
    } catch {
      return ['default'];
    }
  };
  if (!PROFILE_NAME.test(name)) {
    throw new S2nError('EUSAGE', `load profile ${JSON.stringify(name)}: not a profile name`, { hint: `profiles: ${available().join(', ')}` });
  }
  const file = join(dir, `${name}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (sysCode(e) === 'ENOENT') {
      throw new S2nError('EUSAGE', `load profile ${name}: no such profile`, { hint: `profiles: ${available().join(', ')}`, context: { file } });
    }
    throw new S2nError('EUSAGE', `load profile ${name}: cannot read ${file} (${(e as Error).message})`, {
      hint: 'check the installation of s2n-oci',
      cause: e,
      context: { file },
    });
  }
  return parseProfile(text, name);
}
