/**
 * Registries configuration: mirrors, insecure and blocked registries.
 *
 * Our file is `$S2N_OCI_REGISTRIES_CONF`, else
 * `$XDG_CONFIG_HOME/s2n-oci/registries.json` (default `~/.config/...`):
 *
 *   { "registries": { "docker.io": { "mirrors": ["mirror.local:5000", "https://m2/prefix"] },
 *                     "build.lan:5000": { "insecure": true }, "evil.io": { "blocked": true } } }
 *
 * Docker's `/etc/docker/daemon.json` is merged in when present:
 * `registry-mirrors` apply to docker.io (after ours), `insecure-registries`
 * (hosts or CIDRs) mark registries insecure. A missing file is an empty
 * config; a malformed one is EUSAGE naming the file, never silently ignored.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { S2nError, sysCode } from '../../errors.js';
import { DOCKER_HUB, ipInCidr, isCidr, normalizeRegistry, splitHostPort } from './hosts.js';

/** Where to pull from instead of (before) the registry itself. */
export interface MirrorLocation {
  /** `HOST[:PORT]` of the mirror. */
  host: string;
  /** Repository prefix on the mirror (`m2/prefix` → `prefix`), '' when none. */
  pathPrefix: string;
  /** Forced by an explicit `http://` or `https://`; otherwise the usual rules apply. */
  scheme: 'http' | 'https' | undefined;
  /** As written in the file, for messages. */
  raw: string;
}

export interface RegistryEntry {
  mirrors: MirrorLocation[];
  /** Try HTTPS without certificate verification, then plain HTTP. */
  insecure: boolean;
  /** Refuse any access. */
  blocked: boolean;
}

export interface RegistriesConfig {
  /** Keyed by normalised `HOST[:PORT]` (Docker Hub aliases folded into docker.io). */
  registries: Record<string, RegistryEntry>;
  /** CIDRs from daemon.json `insecure-registries`. */
  insecureCidrs: string[];
  /** Files that contributed, for messages. */
  sources: string[];
}

export interface RegistriesConfigOptions {
  env?: NodeJS.ProcessEnv;
  home?: string;
  /** Our file; default from env (see module comment). */
  file?: string;
  /** Docker's daemon.json; default `/etc/docker/daemon.json`. */
  daemonJson?: string;
}

export function emptyRegistriesConfig(): RegistriesConfig {
  return { registries: {}, insecureCidrs: [], sources: [] };
}

export function registriesConfigPath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  if (env.S2N_OCI_REGISTRIES_CONF) return env.S2N_OCI_REGISTRIES_CONF;
  const base = env.XDG_CONFIG_HOME || join(home, '.config');
  return join(base, 's2n-oci', 'registries.json');
}

const HINT = 'see the registries.json format in the s2n-oci documentation';

function bad(path: string, what: string, cause?: unknown): S2nError {
  return new S2nError('EUSAGE', `read registries config ${path}: ${what}`, {
    hint: HINT,
    context: { path },
    ...(cause === undefined ? {} : { cause }),
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses `mirror.host:5000`, `https://m2`, `http://m3:5000/some/prefix`. */
export function parseMirror(raw: string, path = '<mirror>'): MirrorLocation {
  let s = raw.trim();
  let scheme: MirrorLocation['scheme'];
  const m = /^(https?):\/\//i.exec(s);
  if (m) {
    scheme = m[1]!.toLowerCase() as 'http' | 'https';
    s = s.slice(m[0].length);
  } else if (s.includes('://')) {
    throw bad(path, `mirror "${raw}": only http:// and https:// are supported`);
  }
  s = s.replace(/\/+$/, '');
  const slash = s.indexOf('/');
  const hostPart = slash < 0 ? s : s.slice(0, slash);
  let pathPrefix = slash < 0 ? '' : s.slice(slash + 1);
  // A Docker-style mirror URL may end in /v2; the API root is ours to add.
  if (pathPrefix === 'v2') pathPrefix = '';
  if (!HOST_PORT.test(hostPart) || (pathPrefix !== '' && !/^[a-z0-9._\/-]+$/.test(pathPrefix))) {
    throw bad(path, `mirror "${raw}" is not HOST[:PORT][/PREFIX]`);
  }
  return { host: hostPart.toLowerCase(), pathPrefix, scheme, raw };
}

/** `HOST[:PORT]`, the host a DNS name, an IPv4 address or a bracketed IPv6 one. */
const HOST_PORT = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/i;

function parseJsonObject(text: string, path: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(path, `invalid JSON: ${(e as Error).message}`, e);
  }
  if (!isObject(doc)) throw bad(path, 'expected a JSON object');
  return doc;
}

/** Validates the text of our registries.json. */
export function parseRegistriesConfig(text: string, path: string): Record<string, RegistryEntry> {
  const doc = parseJsonObject(text, path);
  for (const k of Object.keys(doc)) {
    if (k !== 'registries' && k !== '$schema') throw bad(path, `unknown key "${k}" (expected "registries")`);
  }
  const regs = doc.registries ?? {};
  if (!isObject(regs)) throw bad(path, '"registries" must be an object keyed by HOST[:PORT]');
  const out: Record<string, RegistryEntry> = {};
  for (const [host, v] of Object.entries(regs)) {
    if (!HOST_PORT.test(host)) throw bad(path, `registry key "${host}" is not HOST[:PORT]`);
    if (!isObject(v)) throw bad(path, `registries["${host}"] must be an object`);
    for (const k of Object.keys(v)) {
      if (k !== 'mirrors' && k !== 'insecure' && k !== 'blocked') {
        throw bad(path, `registries["${host}"]: unknown key "${k}" (expected mirrors, insecure, blocked)`);
      }
    }
    const mirrors = v.mirrors ?? [];
    if (!Array.isArray(mirrors) || !mirrors.every((x): x is string => typeof x === 'string')) {
      throw bad(path, `registries["${host}"].mirrors must be an array of strings`);
    }
    for (const k of ['insecure', 'blocked'] as const) {
      if (v[k] !== undefined && typeof v[k] !== 'boolean') throw bad(path, `registries["${host}"].${k} must be true or false`);
    }
    out[normalizeRegistry(host)] = {
      mirrors: mirrors.map((m) => parseMirror(m, path)),
      insecure: v.insecure === true,
      blocked: v.blocked === true,
    };
  }
  return out;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (sysCode(e) === 'ENOENT' || sysCode(e) === 'ENOTDIR') return undefined;
    throw bad(path, `cannot read: ${(e as Error).message}`, e);
  }
}

function entryFor(cfg: RegistriesConfig, host: string): RegistryEntry {
  return (cfg.registries[host] ??= { mirrors: [], insecure: false, blocked: false });
}

/** Merges daemon.json's `registry-mirrors` and `insecure-registries` into `cfg`. */
export function mergeDaemonJson(cfg: RegistriesConfig, text: string, path: string): void {
  const doc = parseJsonObject(text, path);
  const mirrors = doc['registry-mirrors'];
  if (mirrors !== undefined) {
    if (!Array.isArray(mirrors) || !mirrors.every((x): x is string => typeof x === 'string')) {
      throw bad(path, '"registry-mirrors" must be an array of strings');
    }
    const hub = entryFor(cfg, DOCKER_HUB);
    for (const m of mirrors) {
      const loc = parseMirror(m, path);
      if (!hub.mirrors.some((x) => x.host === loc.host && x.pathPrefix === loc.pathPrefix)) hub.mirrors.push(loc);
    }
  }
  const insecure = doc['insecure-registries'];
  if (insecure !== undefined) {
    if (!Array.isArray(insecure) || !insecure.every((x): x is string => typeof x === 'string')) {
      throw bad(path, '"insecure-registries" must be an array of strings');
    }
    for (const h of insecure) {
      const v = h.replace(/^https?:\/\//i, '').replace(/\/+$/, '');
      if (isCidr(v)) cfg.insecureCidrs.push(v);
      else entryFor(cfg, normalizeRegistry(v)).insecure = true;
    }
  }
  cfg.sources.push(path);
}

export async function loadRegistriesConfig(opts: RegistriesConfigOptions = {}): Promise<RegistriesConfig> {
  const env = opts.env ?? process.env;
  const file = opts.file ?? registriesConfigPath(env, opts.home ?? homedir());
  const cfg = emptyRegistriesConfig();
  const text = await readOptional(file);
  if (text !== undefined) {
    cfg.registries = parseRegistriesConfig(text, file);
    cfg.sources.push(file);
  }
  const daemon = opts.daemonJson ?? '/etc/docker/daemon.json';
  const dtext = await readOptional(daemon);
  if (dtext !== undefined) mergeDaemonJson(cfg, dtext, daemon);
  return cfg;
}

/** The effective settings for `host` (`HOST[:PORT]`); never undefined. */
export function registryEntry(cfg: RegistriesConfig, host: string): RegistryEntry {
  const key = normalizeRegistry(host);
  const e = cfg.registries[key] ?? { mirrors: [], insecure: false, blocked: false };
  if (e.insecure || cfg.insecureCidrs.length === 0) return e;
  const { hostname } = splitHostPort(key);
  return cfg.insecureCidrs.some((c) => ipInCidr(hostname, c)) ? { ...e, insecure: true } : e;
}
