/**
 * Which scanner image `scan` runs: `--image`, then S2N_OCI_IMAGE, then the
 * config file `$XDG_CONFIG_HOME/s2n-oci/scan.json`, then the demo image of
 * the profile's variant. The config file may pin a digest; a tag that moved
 * away from it is refused.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { S2nError, sysCode } from '../errors.js';
import { DEMO_IMAGE_REPOSITORY, type ScannerVariant } from './scanner-contract.js';

export interface ScanConfig {
  /** Image reference; `{variant}` is replaced by prod or dev. */
  image?: string;
  /** sha256 digest the image's manifest (or index) must have. */
  digest?: string;
  /** Default profile. */
  profile?: string;
}

export function scanConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(env.HOME ?? homedir(), '.config');
  return join(base, 's2n-oci', 'scan.json');
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function parseScanConfig(text: string, where: string): ScanConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new S2nError('EUSAGE', `read scan config ${where}: not JSON (${(e as Error).message})`, {
      hint: 'fix the file or remove it; keys: image, digest, profile',
      context: { path: where },
    });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new S2nError('EUSAGE', `read scan config ${where}: not a JSON object`, { hint: 'keys: image, digest, profile', context: { path: where } });
  }
  const out: ScanConfig = {};
  for (const [k, v] of Object.entries(doc)) {
    if (k !== 'image' && k !== 'digest' && k !== 'profile') {
      throw new S2nError('EUSAGE', `read scan config ${where}: unknown key "${k}"`, { hint: 'keys: image, digest, profile', context: { path: where } });
    }
    if (typeof v !== 'string' || v === '') {
      throw new S2nError('EUSAGE', `read scan config ${where}: "${k}" must be a non-empty string`, { hint: 'fix the file', context: { path: where } });
    }
    out[k] = v;
  }
  if (out.digest !== undefined && !DIGEST.test(out.digest)) {
    throw new S2nError('EUSAGE', `read scan config ${where}: digest "${out.digest}" is not sha256:<64 hex>`, { hint: 'copy the digest from `s2n-oci images --digests`', context: { path: where } });
  }
  return out;
}

export async function readScanConfig(env: NodeJS.ProcessEnv = process.env): Promise<ScanConfig> {
  const path = scanConfigPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (sysCode(e) === 'ENOENT') return {};
    throw new S2nError('EUSAGE', `read scan config ${path}: ${(e as Error).message}`, { hint: 'make it readable or remove it', context: { path } });
  }
  return parseScanConfig(text, path);
}

export interface ScannerImageChoice {
  image: string;
  digest?: string;
  /** True when nothing named an image and the built-in demo scanner is used. */
  isDemo: boolean;
}

export function chooseScannerImage(o: { flag?: string; env: NodeJS.ProcessEnv; config: ScanConfig; variant: ScannerVariant }): ScannerImageChoice {
  const named = o.flag ?? (o.env.S2N_OCI_IMAGE || undefined) ?? o.config.image;
  const image = (named ?? `${DEMO_IMAGE_REPOSITORY}:{variant}`).replaceAll('{variant}', o.variant);
  // A digest pinned in the config file belongs to the image named there, not to one given on the command line.
  const digest = o.flag === undefined && !o.env.S2N_OCI_IMAGE ? o.config.digest : undefined;
  return { image, ...(digest ? { digest } : {}), isDemo: named === undefined };
}
