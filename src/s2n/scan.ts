/**
 * `s2n-oci scan`: the scanner image run like `docker run s2n/runtime:prod`
 * did, with the user's plugin folder mounted read-only, a results folder
 * mounted writable, the scanner's own arguments passed through unchanged,
 * and its JSON report read back.
 */
import { constants } from 'node:fs';
import { access, chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ensureImage, type PullPolicy } from '../ensure-image.js';
import { S2nError, isS2nError, sysCode } from '../errors.js';
import { parseReference } from '../oci/reference.js';
import type { Platform } from '../oci/types.js';
import { runImage, type RunIo } from '../run.js';
import type { BindMount, RunOptions } from '../runtime-spec/options.js';
import type { Profile } from '../runtime-spec/profile.js';
import type { ContentStore } from '../store/store.js';
import { detectIdPlan } from '../userns/ids.js';
import { runInUserNamespace } from '../userns/run-in-userns.js';
import { parseReport, type Report } from './report.js';
import { chooseScannerImage, readScanConfig } from './scan-config.js';
import { CA_BUNDLE_ENV, PLUGIN_DIR, PLUGIN_DIR_ENV, PROXY_ENV, REPORT_FILE, RESULTS_DIR, RESULTS_DIR_ENV } from './scanner-contract.js';

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

/** Gives the results back to the invoking user: inside the user namespace, container root is that user. */
async function reclaim(dir: string): Promise<void> {
  const { plan } = await detectIdPlan();
  const uid = process.geteuid?.() ?? 0;
  const r =
    uid === 0 || plan.mode !== 'subid'
      ? await runInUserNamespace({ mode: 'root', uidMappings: [], gidMappings: [] }, 'chown', ['-R', `${uid}:${process.getegid?.() ?? 0}`, '--', dir])
      : await runInUserNamespace(plan, 'chown', ['-R', '0:0', '--', dir]);
  if (r.code !== 0) {
    throw new S2nError('ESTORE', `give scan results back to this user: chown failed (${r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`})`, {
      hint: `the report is in ${dir}, still owned by the scanner's subordinate uid; check newuidmap works, or chown it as root`,
      context: { path: dir },
    });
  }
  await chmod(dir, 0o755);
}

export async function scan(store: ContentStore, req: ScanRequest, io: RunIo): Promise<ScanOutcome> {
  const config = await readScanConfig(req.env);
  const variant = req.profile.variant ?? 'prod';
  const choice = chooseScannerImage({ ...(req.image ? { flag: req.image } : {}), env: req.env, config, variant });

  // Everything the user gave is checked before anything starts.
  const plugins = req.plugins !== undefined ? await checkPlugins(req.plugins) : undefined;
  const caBundle = req.caBundle !== undefined ? await checkCaBundle(req.caBundle) : undefined;

  const isLocal = parseReference(choice.image).registry === 'localhost';
  let image;
  try {
    image = await ensureImage(store, choice.image, {
      // Images named localhost/… were built on some host, never pulled: there is no registry to ask.
      pull: isLocal ? 'never' : req.pull,
      ...(req.platform ? { platform: req.platform } : {}),
      ...(io.onPullEvent ? { onEvent: io.onPullEvent } : {}),
      notice: io.notice,
    });
  } catch (e) {
    if (isS2nError(e) && e.code === 'ENOTFOUND' && isLocal) {
      throw new S2nError('ENOTFOUND', `scanner image ${choice.image} is not in the store`, {
        hint: choice.isDemo
          ? `build and load the demo scanner: node dist/scripts/build-demo-images.js && s2n-oci load -i ~/.cache/s2n-oci/demo/s2n-demo-${variant}.oci.tar (or npm run demo)`
          : `load it from a saved archive: s2n-oci load -i FILE`,
        context: { reference: choice.image },
        cause: e,
      });
    }
    throw e;
  }
  if (choice.digest !== undefined && image.manifestDesc.digest !== choice.digest && image.indexDigest !== choice.digest) {
    throw new S2nError('EDIGEST', `scanner image ${choice.image} is ${image.indexDigest ?? image.manifestDesc.digest}, but the config pins ${choice.digest}`, {
      hint: `the tag moved: check the new image, then update "digest" in the scan config, or pull the pinned one (${choice.image.replace(/:[^:/]+$/, '')}@${choice.digest})`,
      context: { reference: choice.image, expected: choice.digest, actual: image.manifestDesc.digest },
    });
  }

  const resultsDir = resolve(req.results ?? join(defaultResultsRoot(req.env), new Date().toISOString().replace(/[:.]/g, '-')));
  await mkdir(resultsDir, { recursive: true });
  // The scanner's user is a subordinate (or other) uid on the host: it needs write access for the run.
  await chmod(resultsDir, 0o777);

  const mounts: BindMount[] = [{ type: 'bind', source: resultsDir, target: RESULTS_DIR, readOnly: false, options: [] }];
  if (plugins) mounts.push({ type: 'bind', source: plugins, target: PLUGIN_DIR, readOnly: true, options: [] });
  if (caBundle) mounts.push({ type: 'bind', source: caBundle, target: CA_BUNDLE_PATH, readOnly: true, options: [] });
  const env = [`${RESULTS_DIR_ENV}=${RESULTS_DIR}`, `${PLUGIN_DIR_ENV}=${PLUGIN_DIR}`];
  if (caBundle) for (const k of CA_BUNDLE_ENV) env.push(`${k}=${CA_BUNDLE_PATH}`);
  if (req.proxy !== undefined) env.push(`HTTPS_PROXY=${req.proxy}`, `HTTP_PROXY=${req.proxy}`, `https_proxy=${req.proxy}`, `http_proxy=${req.proxy}`);
  else for (const k of PROXY_ENV) if (req.env[k]) env.push(`${k}=${req.env[k]}`);

  const o = req.options ?? {};
  const reportPath = join(resultsDir, REPORT_FILE);
  let status: number;
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
    await reclaim(resultsDir).catch((e: unknown) => io.notice(`warning: ${(e as Error).message}`));
  }
  let reportText: string | undefined;
  try {
    reportText = await readFile(reportPath, 'utf8');
  } catch (e) {
    if (sysCode(e) !== 'ENOENT') throw e;
  }
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
