/**
 * `s2n-oci run` as one use case: image (store or pull) → cached rootfs →
 * config.json → runtime. Each step is a module of its own; this file only
 * orders them and writes the few per-container files of the bundle.
 */
// Synchronous file calls: a few small files per run, on the start-up path users wait on (see runtime/state.ts).
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ensureImage, type PullPolicy } from './ensure-image.js';
import { S2nError } from './errors.js';
import type { Platform } from './oci/types.js';
import type { PullOptions } from './pull.js';
import { RootfsCache } from './rootfs/cache.js';
import { readEtcFiles } from './rootfs/etc.js';
import { removeTree } from './rootfs/remove.js';
import { copyRootfs, writableRootPath } from './rootfs/writable.js';
import type { OwnershipMode } from './userns/types.js';
import { cleanupStale } from './runtime/containers.js';
import { checkExecutable } from './runtime/exec-check.js';
import { chooseRuntime, probeCgroup, probeHost } from './runtime/host.js';
import { launchContainer } from './runtime/launch.js';
import { defaultStateRoot, newContainerId, StateStore } from './runtime/state.js';
import { mark } from './runtime/timing.js';
import { generateSpec } from './runtime-spec/generate.js';
import type { RunOptions } from './runtime-spec/options.js';
import type { Profile } from './runtime-spec/profile.js';
import { DEFAULT_PATH } from './runtime-spec/process-args.js';
import type { ContentStore } from './store/store.js';
import { detectIdPlan } from './userns/ids.js';

export interface RunIo {
  stdin?: NodeJS.ReadableStream & { fd?: number; isTTY?: boolean };
  stdout?: NodeJS.WritableStream & { fd?: number; isTTY?: boolean; columns?: number; rows?: number };
  stderr?: NodeJS.WritableStream & { fd?: number; isTTY?: boolean };
  /** One line for stderr: warnings and notices. */
  notice: (line: string) => void;
  onPullEvent?: PullOptions['onEvent'];
}

export interface RunRequest {
  image: string;
  pull: PullPolicy;
  platform?: Platform;
  options: RunOptions;
  profile: Profile;
  /** `--runtime`: a name (crun, runc) or a path. */
  runtime?: string;
  name?: string;
  detach: boolean;
  /** Default: true in the foreground, false detached. */
  rm?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Called with the container id once its record exists (detached runs print it). */
  onCreated?: (id: string) => void;
}

/** Runs a container; resolves with the exit status to use (the container's own, 128+N, or 126/127 set on thrown errors). */
export async function runImage(store: ContentStore, req: RunRequest, io: RunIo): Promise<number> {
  // S2N_OCI_TIMING=1 prints these: where a warm run spends its time.
  mark('run modules loaded');
  const env = req.env ?? process.env;
  const uid = process.geteuid?.() ?? 0;
  const stateRoot = defaultStateRoot(env, uid);
  if (stateRoot.warning) io.notice(stateRoot.warning);
  // These steps overlap: a pull (or a runtime's first --version) need not wait for the others.
  // If one fails, a pull still under way is stopped rather than left to finish before we exit.
  const abort = new AbortController();
  const imageP = ensureImage(store, req.image, {
    pull: req.pull,
    signal: abort.signal,
    ...(req.platform ? { platform: req.platform } : {}),
    ...(io.onPullEvent ? { onEvent: io.onPullEvent } : {}),
    notice: io.notice,
  }).then((i) => (mark('image found'), i));
  const planP = detectIdPlan({ env }).then(({ plan, warning }) => {
    if (warning) io.notice(`warning: ${warning}`);
    return plan;
  });
  const hostP = (async () => {
    const cgroup = await probeCgroup(uid);
    const runtime = await chooseRuntime({
      ...(req.runtime ? { name: req.runtime } : {}),
      env,
      cgroup,
      // `runc --version` once per binary, not per run.
      cacheDir: stateRoot.dir,
      notice: io.notice,
    });
    const facts = await probeHost(runtime, await planP, cgroup);
    return { runtime, host: { ...facts, hostname: hostname(), ...nofileHard() } };
  })();
  const stateP = StateStore.open(stateRoot.dir).then(async (s) => (await cleanupStale(s), s));
  const [image, plan, { runtime, host }, state] = await Promise.all([imageP, planP, hostP, stateP]).catch((e: unknown) => {
    abort.abort();
    throw e;
  });
  mark('host facts');

  const cached = await new RootfsCache(store).ensure(image, {
    plan,
    onWarning: (w) => io.notice(`warning: ${w.message}`),
  });
  mark('rootfs');

  const id = newContainerId();
  const name = req.name ?? `s2n-${id.slice(0, 12)}`;
  if (req.name !== undefined && (await state.list()).some((r) => r.name === req.name)) {
    throw new S2nError('EUSAGE', `run ${req.image}: the container name "${req.name}" is already in use`, {
      hint: `remove that container first (s2n-oci rm ${req.name}) or choose another --name`,
      context: { name: req.name },
    });
  }
  const bundle = await state.prepare(id, name);
  let rootfsCopy: { path: string; mode: OwnershipMode } | undefined;
  try {
    const readOnly = req.options.readOnly ?? req.profile.readOnlyRoot ?? true;
    // The cached rootfs is shared by every container of the image; a writable root is a private copy.
    // In the store, beside the cache (same filesystem, so reflinks work), not in the state root: that is often a small tmpfs.
    if (!readOnly) rootfsCopy = { path: await copyRootfs(cached.path, writableRootPath(store, id), plan), mode: plan.mode };
    const rootfs = rootfsCopy?.path ?? cached.path;
    const files = { hosts: join(bundle, 'hosts'), resolvConf: join(bundle, 'resolv.conf'), hostname: join(bundle, 'hostname') };
    const { spec, warnings } = generateSpec({
      image: image.config,
      options: { ...req.options, callerEnv: req.options.callerEnv ?? env },
      profile: req.profile,
      host,
      rootfs,
      etc: await readEtcFiles(rootfs),
      files,
      imageRef: req.image,
      id,
    });
    mark('spec generated');
    for (const w of warnings) io.notice(`warning: ${w}`);
    writeEtcFiles(files, spec.hostname ?? id.slice(0, 12), req.options.network ?? 'host');
    const args = spec.process?.args ?? [];
    const pathVar = spec.process?.env?.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
    if (args[0] !== undefined) await checkExecutable(rootfs, args[0], pathVar, spec.process?.cwd ?? '/');
    writeFileSync(join(bundle, 'config.json'), `${JSON.stringify(spec, null, 2)}\n`);
    mark('config written');
    return await launchContainer({
      ...(rootfsCopy ? { rootfsCopy } : {}),
      state,
      runtime,
      id,
      name,
      bundle,
      command: args,
      image: { ref: image.names[0] ?? req.image, digest: image.manifestDesc.digest },
      ...(image.config.config?.StopSignal ? { stopSignal: image.config.config.StopSignal } : {}),
      tty: req.options.tty === true,
      interactive: req.options.interactive === true,
      detach: req.detach,
      ...(req.rm !== undefined ? { rm: req.rm } : {}),
      env,
      notice: io.notice,
      ...(io.stdin ? { stdin: io.stdin } : {}),
      ...(io.stdout ? { stdout: io.stdout } : {}),
      ...(io.stderr ? { stderr: io.stderr } : {}),
      ...(req.onCreated ? { onStarted: () => req.onCreated?.(id) } : {}),
    });
  } catch (e) {
    // Nothing ran yet (or launch cleaned up itself): do not leave a half-made container behind.
    if (!(await state.read(id))) {
      await state.remove(id).catch(() => undefined);
      if (rootfsCopy) await removeTree(rootfsCopy.path, rootfsCopy.mode, plan).catch(() => undefined);
    }
    throw e;
  }
}

/** /etc/hosts, /etc/resolv.conf and /etc/hostname for the container, as podman provides them. */
function writeEtcFiles(files: { hosts: string; resolvConf: string; hostname: string }, hostname: string, network: 'host' | 'none'): void {
  let hosts = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n';
  if (network === 'host') hosts = (readOr('/etc/hosts') ?? hosts).replace(/\n?$/, '\n');
  writeFileSync(files.hosts, `${hosts}127.0.1.1\t${hostname}\n`);
  if (network === 'none') writeFileSync(files.resolvConf, '# --network none: no name servers\n');
  else {
    try {
      copyFileSync('/etc/resolv.conf', files.resolvConf);
    } catch {
      writeFileSync(files.resolvConf, '');
    }
  }
  writeFileSync(files.hostname, `${hostname}\n`);
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * This process's RLIMIT_NOFILE hard limit, from /proc/self/limits (Node has no
 * getrlimit). A container cannot be given more unless we hold
 * CAP_SYS_RESOURCE, which even root may lack inside another container.
 */
function nofileHard(): { nofileHard?: number } {
  const text = readOr('/proc/self/limits') ?? '';
  const m = /^Max open files\s+\S+\s+(\d+)/m.exec(text);
  return m?.[1] !== undefined ? { nofileHard: Number(m[1]) } : {};
}
