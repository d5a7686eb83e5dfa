/**
 * `s2n-oci unpack IMAGE DIR`: a standalone OCI bundle like `umoci unpack`
 * writes, for people who drive runc/crun themselves:
 *
 *   DIR/rootfs         a fresh unpack (not the shared cache: the caller owns it and may write)
 *   DIR/config.json    a minimal runtime config from the image config
 *   DIR/s2n-oci.json   the image and the ownership mode / id mappings the rootfs was built with
 *
 * The config here is deliberately minimal (process from the image, the
 * usual mounts and namespaces, the plan's id mappings); the full generator
 * with profiles and host facts lives in src/runtime-spec.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { S2nError, sysCode } from '../errors.js';
import type { ImageConfig } from '../oci/types.js';
import { validateRuntimeConfig } from '../oci/validate.js';
import type { StoredImage } from '../store/find.js';
import type { ContentStore } from '../store/store.js';
import type { IdPlan } from '../userns/types.js';
import { unpackStoredImage, type BuildOptions } from './build.js';
import { removeTree } from './remove.js';
import { MASKED_PATHS, READONLY_PATHS } from '../runtime-spec/mounts.js';
import { DEFAULT_PATH as DEFAULT_PATH_VALUE } from '../runtime-spec/process-args.js';
import { resolveUser } from '../runtime-spec/user.js';
import { readEtcFiles } from './etc.js';

export const BUNDLE_META = 's2n-oci.json';

export interface BundleResult {
  dir: string;
  rootfs: string;
  config: string;
  plan: IdPlan;
}

const DEFAULT_PATH = `PATH=${DEFAULT_PATH_VALUE}`;

/** The image's USER (`uid`, `uid:gid`, `name`, `name:group`) as numbers, names looked up in the rootfs. */
export async function resolveImageUser(rootfs: string, user: string | undefined, image?: string): Promise<{ uid: number; gid: number }> {
  const { uid, gid } = resolveUser((user ?? '').trim(), await readEtcFiles(rootfs), image);
  return { uid, gid };
}

/** A minimal runtime-spec config for `config` (see the module comment). */
export function minimalRuntimeConfig(config: ImageConfig, user: { uid: number; gid: number }, plan: IdPlan): Record<string, unknown> {
  const c = config.config ?? {};
  const args = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  const env = c.Env ?? [];
  const rootless = plan.mode !== 'root';
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, ...(rootless ? [{ type: 'user' }] : [{ type: 'network' }])];
  return {
    ociVersion: '1.0.2',
    root: { path: 'rootfs', readonly: false },
    process: {
      terminal: false,
      user,
      args: args.length > 0 ? args : ['/bin/sh'],
      env: env.some((e) => e.startsWith('PATH=')) ? env : [DEFAULT_PATH, ...env],
      cwd: c.WorkingDir || '/',
      noNewPrivileges: true,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
    },
    hostname: 's2n-oci',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      rootless
        ? { destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] }
        : { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      namespaces,
      ...(rootless ? { uidMappings: plan.uidMappings, gidMappings: plan.gidMappings } : {}),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}

/** Writes the bundle into `dir` (created if missing; refused if not empty). On failure nothing of ours is left in it. */
export async function writeBundle(store: ContentStore, image: StoredImage, dirArg: string, opts: BuildOptions): Promise<BundleResult> {
  const dir = resolvePath(dirArg);
  let entries: string[] = [];
  try {
    entries = await readdir(dir);
  } catch (e) {
    if (sysCode(e) === 'ENOTDIR') {
      throw new S2nError('EUSAGE', `unpack to ${dir}: it is not a directory`, { hint: 'give a new or empty directory', context: { path: dir } });
    }
    if (sysCode(e) !== 'ENOENT') throw e;
  }
  if (entries.length > 0) {
    throw new S2nError('EUSAGE', `unpack to ${dir}: the directory is not empty`, {
      hint: 'give a new or empty directory (the bundle is written fresh, never over existing files)',
      context: { path: dir, entries: entries.slice(0, 5) },
    });
  }
  await mkdir(dir, { recursive: true });
  const rootfs = join(dir, 'rootfs');
  const config = join(dir, 'config.json');
  const meta = join(dir, BUNDLE_META);
  await mkdir(rootfs);
  try {
    await unpackStoredImage(store, image, rootfs, opts);
    const user = await resolveImageUser(rootfs, image.config.config?.User, image.names[0] ?? image.manifestDesc.digest);
    const spec = minimalRuntimeConfig(image.config, user, opts.plan);
    validateRuntimeConfig(spec);
    await writeFile(config, `${JSON.stringify(spec, null, 2)}\n`);
    await writeFile(
      meta,
      `${JSON.stringify({ image: image.names[0] ?? image.manifestDesc.digest, manifest: image.manifestDesc.digest, mode: opts.plan.mode, uidMappings: opts.plan.uidMappings, gidMappings: opts.plan.gidMappings, createdAt: new Date().toISOString() }, null, 2)}\n`,
    );
  } catch (e) {
    await removeTree(rootfs, opts.plan.mode, opts.plan).catch(() => {});
    for (const f of [config, meta]) await removeTree(f, 'root').catch(() => {});
    throw e;
  }
  return { dir, rootfs, config, plan: opts.plan };
}
