/**
 * Which OCI runtime to use: `--runtime NAME|PATH`, else $S2N_OCI_RUNTIME, else
 * crun then runc on PATH. The version comes from `--version`; features from
 * `runc features` (runc >= 1.1.0; crun 1.8 has no such command) only when asked,
 * since `run` should not pay for an extra process.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { S2nError } from '../errors.js';
import { which } from '../which.js';

export type RuntimeName = 'runc' | 'crun';

/** What `runc features` reports (the runtime-spec features document), reduced to what we use. */
export interface RuntimeFeatures {
  ociVersionMin?: string;
  ociVersionMax?: string;
  /** The whole document as the runtime printed it. */
  raw: Record<string, unknown>;
}

export interface RuntimeInfo {
  name: RuntimeName;
  /** Absolute path of the binary. */
  path: string;
  /** e.g. "1.1.5" (from the first line of `--version`). */
  version: string;
  /** The runtime-spec version the binary reports ("spec: 1.0.2-dev"). */
  specVersion?: string;
  features?: RuntimeFeatures;
  /** True when the user chose it (--runtime or S2N_OCI_RUNTIME): no automatic fallback then. */
  explicit: boolean;
}

/** Runs a program and returns its stdout; injected in tests. */
export type ExecFn = (file: string, args: string[]) => Promise<{ stdout: string; stderr: string; code: number }>;

export const execProgram: ExecFn = (file, args) =>
  new Promise((res) => {
    execFile(file, args, { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      res({ stdout, stderr: err !== null && stderr === '' ? err.message : stderr, code });
    });
  });

export const RUNTIME_NAMES: readonly RuntimeName[] = ['crun', 'runc'];

export interface FindRuntimeOptions {
  /** 'crun', 'runc' or a path to either. */
  name?: string;
  env?: NodeJS.ProcessEnv;
  /** Also run `runc features`. */
  features?: boolean;
  /** Names to skip in the automatic search (used for the fallback). */
  exclude?: readonly RuntimeName[];
  exec?: ExecFn;
  /** Where to cache `--version` answers (the state root). */
  cacheDir?: string;
  /** Refuse a runtime before probing it (chooseRuntime's host check). */
  accept?: (rt: { name: RuntimeName; path: string; explicit: boolean }) => void;
}

/** The binary to use, without running it: explicit choice, else crun then runc on PATH. */
export async function locateRuntime(o: FindRuntimeOptions = {}): Promise<{ name: RuntimeName; path: string; explicit: boolean }> {
  const env = o.env ?? process.env;
  const chosen = o.name ?? (env.S2N_OCI_RUNTIME || undefined);
  if (chosen !== undefined) {
    const path = which(chosen, env);
    if (path === undefined) {
      throw new S2nError('ENOTFOUND', `find runtime ${chosen}: not found${chosen.includes('/') ? ' or not executable' : ' on PATH'}`, {
        hint: 'install it (apt-get install crun runc) or pass --runtime with the path of crun or runc',
        context: { runtime: chosen },
      });
    }
    return { name: runtimeKind(path), path, explicit: true };
  }
  for (const name of RUNTIME_NAMES) {
    if (o.exclude?.includes(name)) continue;
    const path = which(name, env);
    if (path !== undefined) return { name, path, explicit: false };
  }
  throw new S2nError('ENOTFOUND', 'find runtime: neither crun nor runc is on PATH', {
    hint: 'install one: sudo apt-get install crun runc (or set S2N_OCI_RUNTIME to its path)',
    context: { PATH: env.PATH },
  });
}

/** The runtime kind a binary is, from its file name ("crun", "/usr/local/bin/crun-1.8" -> crun). */
export function runtimeKind(pathOrName: string): RuntimeName {
  return basename(pathOrName).includes('crun') ? 'crun' : 'runc';
}

/** First line "runc version 1.1.5+ds1" / "crun version 1.8.1", and "spec: 1.0.2-dev". */
export function parseVersion(text: string): { version: string; specVersion?: string } | undefined {
  const m = /^\S+ version (\S+)/m.exec(text);
  if (!m?.[1]) return undefined;
  const spec = /^spec: (\S+)/m.exec(text)?.[1];
  return spec === undefined ? { version: m[1] } : { version: m[1], specVersion: spec };
}

/** Versions by binary (path, size, mtime): `--version` is a process start `run` need not pay each time. */
async function cachedVersion(cacheDir: string | undefined, path: string, probe: () => Promise<{ version: string; specVersion?: string } | undefined>) {
  if (cacheDir === undefined) return probe();
  const file = join(cacheDir, 'runtime-versions.json');
  let key: string;
  try {
    const st = statSync(path);
    key = `${path}:${st.size}:${st.mtimeMs}`;
  } catch {
    return probe();
  }
  let cache: Record<string, { version: string; specVersion?: string }> = {};
  try {
    cache = JSON.parse(readFileSync(file, 'utf8')) as typeof cache;
  } catch {
    /* none yet */
  }
  const hit = cache[key];
  if (hit !== undefined && typeof hit.version === 'string') return hit;
  const v = await probe();
  if (v !== undefined) {
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      await mkdir(cacheDir, { recursive: true });
      await writeFile(tmp, JSON.stringify({ ...cache, [key]: v }));
      await rename(tmp, file);
    } catch {
      /* a cache we cannot write is only slower */
    }
  }
  return v;
}

/** Probes one binary; throws when it does not answer `--version` like runc/crun. */
export async function probeRuntime(path: string, explicit: boolean, o: { features?: boolean; exec?: ExecFn; cacheDir?: string } = {}): Promise<RuntimeInfo> {
  const exec = o.exec ?? execProgram;
  let r = { code: 0, stdout: '', stderr: '' };
  const v = await cachedVersion(o.features ? undefined : o.cacheDir, path, async () => {
    r = await exec(path, ['--version']);
    return r.code === 0 ? parseVersion(r.stdout) : undefined;
  });
  if (v === undefined) {
    throw new S2nError('EUSAGE', `probe runtime ${path}: \`${path} --version\` did not answer like runc or crun`, {
      hint: 'pass --runtime crun, --runtime runc or the path of one of them',
      context: { path, stdout: r.stdout.slice(0, 200), stderr: r.stderr.slice(0, 200) },
    });
  }
  const info: RuntimeInfo = { name: runtimeKind(path), path, ...v, explicit };
  if (o.features) {
    const f = await exec(path, ['features']);
    if (f.code === 0) {
      try {
        const raw = JSON.parse(f.stdout) as Record<string, unknown>;
        info.features = {
          raw,
          ...(typeof raw.ociVersionMin === 'string' ? { ociVersionMin: raw.ociVersionMin } : {}),
          ...(typeof raw.ociVersionMax === 'string' ? { ociVersionMax: raw.ociVersionMax } : {}),
        };
      } catch {
        /* not JSON: treat as no features command */
      }
    }
  }
  return info;
}

/** The runtime to use (probed), or ENOTFOUND with the install command. */
export async function findRuntime(o: FindRuntimeOptions = {}): Promise<RuntimeInfo> {
  const loc = await locateRuntime(o);
  o.accept?.(loc);
  return probeRuntime(loc.path, loc.explicit, o);
}

/** Every runtime on PATH (for `info`), each probed with features. */
export async function findAllRuntimes(env: NodeJS.ProcessEnv = process.env, exec?: ExecFn): Promise<RuntimeInfo[]> {
  const out: RuntimeInfo[] = [];
  for (const name of RUNTIME_NAMES) {
    const path = which(name, env);
    if (path === undefined) continue;
    try {
      out.push(await probeRuntime(path, false, { features: true, ...(exec ? { exec } : {}) }));
    } catch {
      /* a broken binary is reported as absent */
    }
  }
  return out;
}
