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
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { S2nError, sysCode } from '../errors.js';
import type { ImageConfig } from '../oci/types.js';
import { validateRuntimeConfig } from '../oci/validate.js';
import type { StoredImage } from '../store/find.js';
import type { ContentStore } from '../store/store.js';
import { resolveInRoot } from '../unpack/resolve.js';
import type { IdPlan } from '../userns/types.js';
import { unpackStoredImage, type BuildOptions } from './build.js';
import { removeTree } from './remove.js';

export const BUNDLE_META = 's2n-oci.json';

export interface BundleResult {
  dir: string;
  rootfs: string;
  config: string;
  plan: IdPlan;
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A `name:x:id:...` file (passwd, group) from inside the rootfs, never following a link out of it. */
async function lookupId(rootfs: string, file: string, name: string): Promise<{ id: number; gid?: number } | undefined> {
  let text: string;
  try {
    text = await readFile(await resolveInRoot(rootfs, file), 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return { id: Number(f[2]), ...(f[3] !== undefined && /^\d+$/.test(f[3]) ? { gid: Number(f[3]) } : {}) };
  }
  return undefined;
}

/** The image's USER (`uid`, `uid:gid`, `name`, `name:group`) as numbers, names looked up in the rootfs. */
export async function resolveUser(rootfs: string, user: string | undefined): Promise<{ uid: number; gid: number }> {
  const spec = (user ?? '').trim();
  if (spec === '') return { uid: 0, gid: 0 };
  const [u = '', g] = spec.split(':', 2);
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) uid = Number(u);
  else {
    const found = await lookupId(rootfs, 'etc/passwd', u);
    if (found === undefined) {
      throw new S2nError('EIMAGE', `resolve image USER ${spec}: user "${u}" is not in the image's /etc/passwd`, {
        hint: 'the image config names a user its rootfs does not define; use a numeric USER',
        context: { user: spec },
      });
    }
    uid = found.id;
    gid = found.gid;
  }
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const found = await lookupId(rootfs, 'etc/group', g);
      if (found === undefined) {
        throw new S2nError('EIMAGE', `resolve image USER ${spec}: group "${g}" is not in the image's /etc/group`, {
          hint: 'use a numeric group in USER',
          context: { user: spec },
        });
      }
      gid = found.id;
    }
  }
  return { uid, gid: gid ?? 0 };
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
      maskedPaths: ['/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
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
    const user = await resolveUser(rootfs, image.config.config?.User);
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
