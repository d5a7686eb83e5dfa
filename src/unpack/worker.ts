/**
 * The unpack worker: a separate Node process that unshare starts inside the
 * user namespace (see src/rootfs/build.ts), so its chowns land on subuids.
 * Started as the installed command (bundle and code cache) with
 * S2N_OCI_INTERNAL_ENTRY=unpack-worker, or as worker-main.js without a bundle.
 * It reads one JSON request on stdin, streams each layer blob straight from
 * the store (no copies), and answers with JSON lines on stdout: warnings,
 * progress, then one `done` or `error` line. Before writing anything it
 * checks that the namespace maps ids exactly as the plan says.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { S2nError, isS2nError } from '../errors.js';
import type { Digest } from '../oci/types.js';
import type { IdMapping } from '../userns/types.js';
import { unpackImage } from './apply.js';
import type { ApplyLayerResult, UnpackWarning } from './apply.js';

export interface WorkerRequest {
  rootfs: string;
  layers: Array<{ path: string; diffId: Digest }>;
  ownership: 'real' | 'none';
  /** When set, /proc/self/uid_map and gid_map must equal these. */
  uidMappings?: IdMapping[];
  gidMappings?: IdMapping[];
}

export type WorkerMessage =
  | { type: 'warning'; warning: UnpackWarning }
  | { type: 'progress'; layer: number; layers: number }
  | { type: 'done'; results: ApplyLayerResult[] }
  | { type: 'error'; error: { code: string; message: string; hint?: string; context?: Record<string, unknown> } };

function send(m: WorkerMessage): void {
  process.stdout.write(`${JSON.stringify(m)}\n`);
}

function parseMap(text: string): string {
  return JSON.stringify(
    text
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).map(Number))
      .sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0)),
  );
}

function planMap(m: IdMapping[]): string {
  return JSON.stringify(m.map((x) => [x.containerID, x.hostID, x.size]).sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0)));
}

async function checkMaps(req: WorkerRequest): Promise<void> {
  for (const [file, want] of [
    ['uid_map', req.uidMappings],
    ['gid_map', req.gidMappings],
  ] as const) {
    if (want === undefined) continue;
    const have = await readFile(`/proc/self/${file}`, 'utf8');
    if (parseMap(have) !== planMap(want)) {
      throw new S2nError('EINTERNAL', `unpack in user namespace: /proc/self/${file} is not the planned mapping`, {
        hint: 'unshare mapped ids differently than planned (check /etc/subuid, /etc/subgid and the util-linux version)',
        context: { have: have.trim(), want },
      });
    }
  }
}

async function work(): Promise<void> {
  let text = '';
  for await (const c of process.stdin) text += String(c);
  const req = JSON.parse(text) as WorkerRequest;
  await checkMaps(req);
  let i = 0;
  const results = await unpackImage(
    req.rootfs,
    req.layers.map((l) => ({
      diffId: l.diffId,
      open: async () => {
        send({ type: 'progress', layer: ++i, layers: req.layers.length });
        return createReadStream(l.path, { highWaterMark: 256 * 1024 });
      },
    })),
    { ownership: req.ownership, onWarning: (warning) => send({ type: 'warning', warning }) },
  );
  send({ type: 'done', results });
}

/** Reads the request on stdin, unpacks, answers on stdout; the exit code is 0 or 1 (the error is on stdout). */
export function runUnpackWorker(): Promise<void> {
  return work().then(
    () => {
      process.exitCode = 0;
    },
    (e: unknown) => {
      const s = isS2nError(e)
        ? { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}), context: e.context }
        : { code: 'EINTERNAL', message: e instanceof Error ? e.message : String(e), context: { code: (e as { code?: unknown } | null)?.code } };
      send({ type: 'error', error: s });
      process.exitCode = 1;
    },
  );
}
