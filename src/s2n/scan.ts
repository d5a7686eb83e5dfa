/**
 * `s2n-oci scan`: the scanner image run like `docker run s2n/runtime:prod`
 * did, with the user's plugin folder mounted read-only, a results folder
 * mounted writable, the scanner's own arguments passed through unchanged,
 * and its JSON report read back.
 */
import { constants } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readdir, readFile, rename, rmdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ensureImage, type PullPolicy } from '../ensure-image.js';
import { S2nError, isS2nError, sysCode } from '../errors.js';
import { parseReference } from '../oci/reference.js';
import type { Platform } from '../oci/types.js';
import { runImage, type RunIo } from '../run.js';
import type { BindMount, RunOptions } from '../runtime-spec/options.js';
import type { Profile } from '../runtime-spec/profile.js';
import { findImage, type StoredImage } from '../store/find.js';
import type { ContentStore } from '../store/store.js';
import { detectIdPlan } from '../userns/ids.js';
import { runInUserNamespace } from '../userns/run-in-userns.js';
import { parseReport, type Report } from './report.js';
import { chooseScannerImage, readScanConfig, scanConfigPath, type ScanConfig, type ScannerImageChoice } from './scan-config.js';
import { CA_BUNDLE_ENV, demoArchiveName, PLUGIN_DIR, PLUGIN_DIR_ENV, PROXY_ENV, REPORT_FILE, RESULTS_DIR, RESULTS_DIR_ENV, type ScannerVariant } from './scanner-contract.js';

/** Where a --ca-bundle file is mounted inside the scanner. */
export const CA_BUNDLE_PATH = '/etc/s2n-oci/ca-bundle.pem';

export interface ScanRequest {
  /** The scanner's arguments after `scan`, unchanged. */
  args: string[];
  image?: string;
  profile: Profile;
  plugins?: string;
  /** Results folder; default: a new one under $XDG_STATE_HOME/s2n-oci/scans. */
  results?: string;
  caBundle?: string;
  proxy?: string;
  pull: PullPolicy;
  platform?: Platform;
  runtime?: string;
  env: NodeJS.ProcessEnv;
  /** The scan config, when the caller already read it (for its default profile); else read here. */
  config?: ScanConfig;
  /** More container options (`-e`, `-v`, limits…), as for `run`. */
  options?: RunOptions;
}

export interface ScanOutcome {
  /** The scanner's exit status (s2n-oci's own). */
  status: number;
  resultsDir: string;
  reportPath: string;
  /** Absent when the scanner wrote none (it failed before, or was interrupted). */
  report?: Report;
  reportText?: string;
}

function defaultResultsRoot(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_STATE_HOME?.startsWith('/') ? env.XDG_STATE_HOME : join(env.HOME ?? '/tmp', '.local', 'state');
  return join(base, 's2n-oci', 'scans');
}

/** Plugins must be readable by the scanner's own (non-root) user, who is "other" to the files' owner. */
async function checkPlugins(dir: string): Promise<string> {
  const abs = resolve(dir);
  const fail = (why: string, hint: string): S2nError => new S2nError('EUSAGE', `--plugins ${dir}: ${why}`, { hint, context: { path: abs } });
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    throw fail(sysCode(e) === 'ENOENT' ? 'no such directory' : `cannot read it (${sysCode(e) ?? (e as Error).message})`, 'give the folder that holds your plugin .py files');
  }
  if (!st.isDirectory()) throw fail('not a directory', 'give the folder that holds your plugin .py files, not a file');
  try {
    await access(abs, constants.R_OK | constants.X_OK);
  } catch {
    throw fail('not readable', `chmod u+rx ${abs}`);
  }
  if ((st.mode & 0o005) !== 0o005) throw fail('the scanner runs as a non-root user and cannot list it', `chmod o+rx ${abs}`);
  for (const name of await readdir(abs)) {
    const f = await stat(join(abs, name)).catch(() => undefined);
    if (f?.isFile() && (f.mode & 0o004) === 0) throw fail(`${name} is not readable by the scanner's user`, `chmod o+r ${join(abs, name)}`);
  }
  return abs;
}

async function checkCaBundle(file: string): Promise<string> {
  const abs = resolve(file);
  try {
    const st = await stat(abs);
    if (!st.isFile()) throw new Error('not a file');
    await access(abs, constants.R_OK);
    if ((st.mode & 0o004) === 0) {
      throw new S2nError('EUSAGE', `--ca-bundle ${file}: not readable by the scanner's non-root user`, { hint: `chmod o+r ${abs}`, context: { path: abs } });
    }
  } catch (e) {
    if (isS2nError(e)) throw e;
    throw new S2nError('EUSAGE', `--ca-bundle ${file}: ${(e as Error).message}`, { hint: 'give a PEM file of CA certificates', context: { path: abs } });
  }
  return abs;
}

/** Gives a folder the scanner wrote back to the invoking user: inside the user namespace, container root is that user. */
async function reclaim(dir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const { plan } = await detectIdPlan({ env });
  const uid = process.geteuid?.() ?? 0;
  const r =
    uid === 0 || plan.mode !== 'subid'
      ? await runInUserNamespace({ mode: 'root', uidMappings: [], gidMappings: [] }, 'chown', ['-R', `${uid}:${process.getegid?.() ?? 0}`, '--', dir])
      : await runInUserNamespace(plan, 'chown', ['-R', '0:0', '--', dir]);
  if (r.code !== 0) {
    throw new S2nError('ESTORE', `give scan results back to this user: chown failed (${r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`})`, {
      hint: `the results are in ${dir}, still owned by the scanner's uid; check newuidmap works, or chown them as root`,
      context: { path: dir },
    });
  }
}

/**
 * The scanner writes into a fresh folder inside the results folder (open to
 * its uid for the run); afterwards that folder is given back to the caller
 * and its files moved up. So the caller's own folder is never opened to other
 * users, files already there are never chowned, and a report left there by
 * an earlier scan is never taken for this one's. Returns where each file the
 * scanner wrote now is.
 */
async function collectResults(work: string, resultsDir: string, env: NodeJS.ProcessEnv, notice: (line: string) => void): Promise<Map<string, string>> {
  const where = new Map<string, string>();
  let names: string[];
  try {
    names = await readdir(work);
  } catch (e) {
    notice(`warning: read scan results ${work}: ${sysCode(e) ?? (e as Error).message}`);
    return where;
  }
  for (const name of names) where.set(name, join(work, name));
  try {
    await reclaim(work, env);
  } catch (e) {
    // Still owned by the scanner's uid: left where it is, and said so.
    notice(`warning: ${(e as Error).message}`);
    return where;
  }
  for (const name of names) {
    try {
      await rename(join(work, name), join(resultsDir, name));
      where.set(name, join(resultsDir, name));
    } catch (e) {
      // E.g. a folder of the same name already there: keep both rather than delete the old one.
      notice(`warning: keep ${join(work, name)}: cannot move it to ${resultsDir} (${sysCode(e) ?? (e as Error).message})`);
    }
  }
  // Not empty (something could not be moved): at least close it to other users again.
  await rmdir(work).catch(() => chmod(work, 0o755).catch(() => {}));
  return where;
}

const isNotInStore = (e: unknown): boolean => isS2nError(e) && (e.code === 'EIMAGE' || e.code === 'ENOTFOUND');

/**
 * The scanner image from the store, pulled when the policy says so. Looked up
 * here rather than left to ensureImage, so that a missing `localhost/…`
 * image (built on some host, never pulled: no registry to ask) gets a hint
 * that names `load`.
 */
async function scannerImage(store: ContentStore, choice: ScannerImageChoice, variant: ScannerVariant, req: ScanRequest, io: RunIo): Promise<StoredImage> {
  const isLocal = parseReference(choice.image).registry === 'localhost';
  const pull: PullPolicy = isLocal ? 'never' : req.pull;
  if (pull !== 'always') {
    try {
      return await findImage(store, choice.image);
    } catch (e) {
      if (!isNotInStore(e)) throw e;
      if (pull === 'never') {
        const cache = join(req.env.XDG_CACHE_HOME?.startsWith('/') ? req.env.XDG_CACHE_HOME : join(req.env.HOME ?? '~', '.cache'), 's2n-oci', 'demo');
        throw new S2nError('EIMAGE', `scanner image ${choice.image} is not in the store${isLocal ? '' : ' and --pull=never was given'}`, {
          hint: choice.isDemo
            ? `load the demo scanner: s2n-oci load -i ${join(cache, demoArchiveName(variant))} (build it first with \`node dist/scripts/build-demo-images.js --variant ${variant}\` in a clone, or run \`npm run demo\` there)`
            : isLocal
              ? `load it from a saved archive: s2n-oci load -i FILE (s2n-oci save ${choice.image} -o FILE on a host that has it)`
              : `pull it (s2n-oci pull ${choice.image}), or on a host without network load a saved archive: s2n-oci load -i FILE`,
          context: { reference: choice.image },
          cause: e,
        });
      }
    }
  }
  try {
    return await ensureImage(store, choice.image, {
      pull: 'always',
      ...(req.platform ? { platform: req.platform } : {}),
      ...(io.onPullEvent ? { onEvent: io.onPullEvent } : {}),
      notice: io.notice,
    });
  } catch (e) {
    if (!isS2nError(e)) throw e;
    // Many scanning hosts cannot reach the registry at all: say what works there.
    throw new S2nError(e.code, e.message, {
      hint: `${e.hint ? `${e.hint} ` : ''}(on a host without access to the registry: s2n-oci load -i FILE, saved with s2n-oci save ${choice.image} -o FILE)`,
      ...(e.context ? { context: e.context } : {}),
      cause: e,
    });
  }
}

export async function scan(store: ContentStore, req: ScanRequest, io: RunIo): Promise<ScanOutcome> {
  const config = req.config ?? (await readScanConfig(req.env));
  const variant = req.profile.variant ?? 'prod';
  const choice = chooseScannerImage({ ...(req.image ? { flag: req.image } : {}), env: req.env, config, variant });

  // Everything the user gave is checked before anything starts.
  const plugins = req.plugins !== undefined ? await checkPlugins(req.plugins) : undefined;
  const caBundle = req.caBundle !== undefined ? await checkCaBundle(req.caBundle) : undefined;

  const image = await scannerImage(store, choice, variant, req, io);
  if (choice.digest !== undefined && image.manifestDesc.digest !== choice.digest && image.indexDigest !== choice.digest) {
    throw new S2nError('EDIGEST', `scanner image ${choice.image} is ${image.indexDigest ?? image.manifestDesc.digest}, but the config pins ${choice.digest}`, {
      hint:
        parseReference(choice.image).registry === 'localhost'
          ? `load the archive of the pinned image (s2n-oci load -i FILE), or, if this one is trusted, set "digest" in ${scanConfigPath(req.env)} to its digest`
          : `the tag moved: check the new image, then update "digest" in ${scanConfigPath(req.env)}, or pull the pinned one (${choice.image.replace(/:[^:/]+$/, '')}@${choice.digest})`,
      context: { reference: choice.image, expected: choice.digest, actual: image.manifestDesc.digest },
    });
  }

  const resultsDir = resolve(req.results ?? join(defaultResultsRoot(req.env), new Date().toISOString().replace(/[:.]/g, '-')));
  await mkdir(resultsDir, { recursive: true });
  const work = await mkdtemp(join(resultsDir, '.scan-'));
  // The scanner's user is a subordinate (or other) uid on the host: it needs write access for the run.
  await chmod(work, 0o777);

  const mounts: BindMount[] = [{ type: 'bind', source: work, target: RESULTS_DIR, readOnly: false, options: [] }];
  if (plugins) mounts.push({ type: 'bind', source: plugins, target: PLUGIN_DIR, readOnly: true, options: [] });
  if (caBundle) mounts.push({ type: 'bind', source: caBundle, target: CA_BUNDLE_PATH, readOnly: true, options: [] });
  const env = [`${RESULTS_DIR_ENV}=${RESULTS_DIR}`, `${PLUGIN_DIR_ENV}=${PLUGIN_DIR}`];
  if (caBundle) for (const k of CA_BUNDLE_ENV) env.push(`${k}=${CA_BUNDLE_PATH}`);
  // The caller's proxy settings, NO_PROXY included; --proxy replaces only the proxy itself.
  for (const k of PROXY_ENV) {
    const v = req.proxy !== undefined && /^https?_proxy$/i.test(k) ? req.proxy : req.env[k];
    if (v) env.push(`${k}=${v}`);
  }

  const o = req.options ?? {};
  let status: number;
  let written = new Map<string, string>();
  try {
    status = await runImage(
      store,
      {
        image: image.manifestDesc.digest,
        pull: 'never',
        options: { ...o, command: ['scan', ...req.args], env: [...env, ...(o.env ?? [])], mounts: [...mounts, ...(o.mounts ?? [])], callerEnv: req.env },
        profile: req.profile,
        ...(req.runtime ? { runtime: req.runtime } : {}),
        detach: false,
        env: req.env,
      },
      // stdout is the report's: the scanner's own output goes to stderr.
      { ...io, stdout: io.stderr ?? process.stderr, stdin: undefined },
    );
  } finally {
    written = await collectResults(work, resultsDir, req.env, io.notice);
  }
  const reportPath = written.get(REPORT_FILE) ?? join(resultsDir, REPORT_FILE);
  let reportText: string | undefined;
  // Only a report this run wrote: the results folder may hold an earlier scan's.
  if (written.has(REPORT_FILE)) reportText = await readFile(reportPath, 'utf8');
  if (reportText === undefined) {
    if (status === 0) {
      throw new S2nError('EIMAGE', `scan with ${choice.image}: the scanner exited 0 but wrote no ${REPORT_FILE}`, {
        hint: `is this an s2n scanner image? it must write its report to $${RESULTS_DIR_ENV}/${REPORT_FILE}`,
        context: { reference: choice.image, resultsDir },
      });
    }
    return { status, resultsDir, reportPath };
  }
  return { status, resultsDir, reportPath, report: parseReport(reportText, reportPath), reportText };
}
