/**
 * One image of the store → one rootfs directory, in the ownership mode of an
 * IdPlan: 'root' and 'single' apply the layers in this process (real chown,
 * or none); 'subid' runs the unpack worker inside a user namespace mapped as
 * the plan says, so chown to image uids lands on the user's subuids.
 * Used by the rootfs cache and by `s2n-oci unpack`.
 */
import { createReadStream, existsSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { S2nError, type ErrorCode } from '../errors.js';
import type { Digest } from '../oci/types.js';
import type { StoredImage } from '../store/find.js';
import type { ContentStore } from '../store/store.js';
import { unpackImage, type ApplyLayerResult, type UnpackWarning } from '../unpack/apply.js';
import type { WorkerMessage, WorkerRequest } from '../unpack/worker.js';
import { spawnInUserNamespace, type UserNamespaceOptions } from '../userns/run-in-userns.js';
import type { IdPlan } from '../userns/types.js';

export interface UnpackProgress {
  /** 1-based index of the layer being applied. */
  layer: number;
  layers: number;
}

export interface BuildOptions {
  plan: IdPlan;
  onWarning?: (w: UnpackWarning) => void;
  onProgress?: (p: UnpackProgress) => void;
  /** For tests: how the worker is started inside the namespace. */
  userns?: UserNamespaceOptions;
}

/** The environment variable that makes the installed command run the unpack worker. */
export const WORKER_ENTRY = { S2N_OCI_INTERNAL_ENTRY: 'unpack-worker' } as const;

/**
 * What node runs as the worker (with WORKER_ENTRY in its environment): the
 * installed command, whose bundle and code cache start it ~20 ms sooner than
 * tsc's modules, else worker-main.js. Both live in dist/: beside this module,
 * or in the repository's dist/ when running from src/ (vitest).
 */
export function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  const srcAt = here.lastIndexOf(`${sep}src${sep}`);
  const dist = existsSync(join(dirname(here), '..', 'unpack', 'worker-main.js')) ? join(dirname(here), '..') : join(here.slice(0, srcAt), 'dist', 'src');
  const launcher = join(dist, 'cli', 's2n-oci.cjs');
  return existsSync(join(dist, 'cli', 'bundle.cjs')) && existsSync(launcher) ? launcher : join(dist, 'unpack', 'worker-main.js');
}

function layersOf(store: ContentStore, image: StoredImage): Array<{ path: string; diffId: Digest }> {
  const diffIds = image.config.rootfs.diff_ids;
  if (diffIds.length !== image.manifest.layers.length) {
    throw new S2nError('EMANIFEST', `unpack ${image.names[0] ?? image.manifestDesc.digest}: the manifest has ${image.manifest.layers.length} layers, the config ${diffIds.length} diff_ids`, {
      hint: 'the image is malformed; pull it again or rebuild it',
      context: { manifest: image.manifestDesc.digest },
    });
  }
  return image.manifest.layers.map((l, i) => ({ path: store.blobPath(l.digest), diffId: diffIds[i] as Digest }));
}

/** Unpacks `image` into `rootfs` (an existing empty directory) as `opts.plan` says. */
export async function unpackStoredImage(store: ContentStore, image: StoredImage, rootfs: string, opts: BuildOptions): Promise<ApplyLayerResult[]> {
  const layers = layersOf(store, image);
  if (opts.plan.mode !== 'subid') {
    let i = 0;
    return unpackImage(
      rootfs,
      layers.map((l) => ({
        diffId: l.diffId,
        open: async () => {
          opts.onProgress?.({ layer: ++i, layers: layers.length });
          return createReadStream(l.path, { highWaterMark: 256 * 1024 });
        },
      })),
      { ownership: opts.plan.mode === 'root' ? 'real' : 'none', ...(opts.onWarning ? { onWarning: opts.onWarning } : {}) },
    );
  }
  const req: WorkerRequest = { rootfs, layers, ownership: 'real', uidMappings: opts.plan.uidMappings, gidMappings: opts.plan.gidMappings };
  return runWorker(opts.plan, req, opts);
}

async function runWorker(plan: IdPlan, req: WorkerRequest, opts: BuildOptions): Promise<ApplyLayerResult[]> {
  const env = { ...(opts.userns?.env ?? process.env), ...WORKER_ENTRY };
  const child = spawnInUserNamespace(plan, process.execPath, [workerScript()], { ...opts.userns, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 16 * 1024) stderr += s;
  });
  child.stdin?.on('error', () => {});
  child.stdin?.end(JSON.stringify(req));
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  spawnError.catch(() => {});
  let done: ApplyLayerResult[] | undefined;
  let failed: WorkerMessage & { type: 'error' } | undefined;
  const lines = (async () => {
    for await (const line of createInterface({ input: child.stdout! })) {
      let m: WorkerMessage;
      try {
        m = JSON.parse(line) as WorkerMessage;
      } catch {
        continue;
      }
      if (m.type === 'warning') opts.onWarning?.(m.warning);
      else if (m.type === 'progress') opts.onProgress?.({ layer: m.layer, layers: m.layers });
      else if (m.type === 'done') done = m.results;
      else failed = m;
    }
  })();
  const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
  try {
    await Promise.race([Promise.all([lines, exit]), spawnError]);
  } catch (e) {
    throw new S2nError('EINTERNAL', `unpack in user namespace: cannot start unshare (${e instanceof Error ? e.message : String(e)})`, {
      hint: 'install util-linux (unshare) and uidmap (newuidmap, newgidmap)',
      cause: e,
    });
  }
  const [code, signal] = await exit;
  if (failed) {
    throw new S2nError(failed.error.code as ErrorCode, failed.error.message, {
      ...(failed.error.hint ? { hint: failed.error.hint } : {}),
      context: failed.error.context ?? {},
    });
  }
  if (code !== 0 || done === undefined) {
    const why = stderr.trim().split('\n').slice(-2).join('; ');
    throw new S2nError('EINTERNAL', `unpack in user namespace: the worker failed (${signal ?? `exit ${code}`}${why ? `: ${why}` : ''})`, {
      hint: 'check that newuidmap/newgidmap work for this user (`unshare --user --map-auto true`) and that /etc/subuid and /etc/subgid have a range for it',
      context: { exitCode: code, signal, stderr: stderr.slice(-2000) },
    });
  }
  return done;
}
