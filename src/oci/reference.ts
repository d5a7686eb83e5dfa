/**
 * Image references as docker and podman read them (the distribution/reference
 * grammar plus Docker Hub normalisation):
 *
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ registry "/" ] path-component ( "/" path-component )*
 *   registry   := ( domain-name | "[" ipv6 "]" ) [ ":" port ]
 *
 * Parsed by hand rather than with one big regex so each refusal can say
 * exactly what is wrong.
 */
import { S2nError } from '../errors.js';
import { parseDigest } from './digest.js';
import type { Digest } from './types.js';

export interface Reference {
  /** Registry host[:port], normalised: Docker Hub is always `docker.io`. */
  registry: string;
  /** Path inside the registry; Docker Hub official images get `library/`. */
  repository: string;
  tag?: string;
  /** When present, fetching uses the digest (the tag is only informative). */
  digest?: Digest;
}

export interface ParseReferenceOptions {
  /** Registry for names without one (default `docker.io`). */
  defaultRegistry?: string;
}

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';
/** Other spellings of Docker Hub that mean the same registry. */
const DOCKER_HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io']);
const DEFAULT_TAG = 'latest';
const NAME_TOTAL_MAX = 255;

const TAG_RE = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT_RE = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6_RE = /^\[[a-fA-F0-9:]+\]$/;
const PORT_RE = /^[0-9]+$/;
const IMAGE_ID_RE = /^[a-f0-9]{64}$/;

const HINT = 'references look like NAME[:TAG][@DIGEST], e.g. docker.io/library/alpine:3.19';

function invalid(input: string, reason: string): S2nError {
  return new S2nError('EREFERENCE', `invalid reference "${input}": ${reason}`, {
    hint: HINT,
    context: { reference: input },
  });
}

/** Why `host` is not a registry host[:port], or undefined if it is one. */
function registryProblem(registry: string): string | undefined {
  let host = registry;
  let port: string | undefined;
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']');
    if (close < 0) return `registry "${registry}" has an unclosed "["`;
    host = registry.slice(0, close + 1);
    const rest = registry.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return `registry "${registry}" has text after "]"`;
      port = rest.slice(1);
    }
    if (!IPV6_RE.test(host)) return `registry "${registry}" is not a valid IPv6 address in brackets`;
  } else {
    const colon = registry.lastIndexOf(':');
    if (colon >= 0) {
      host = registry.slice(0, colon);
      port = registry.slice(colon + 1);
    }
    for (const part of host.split('.')) {
      if (!DOMAIN_COMPONENT_RE.test(part)) return `registry "${registry}" is not a valid host name`;
    }
  }
  if (port !== undefined && !PORT_RE.test(port)) return `registry "${registry}" has an invalid port "${port}"`;
  return undefined;
}

/**
 * Docker's rule for telling a registry from a path component: the first
 * component names a registry iff it has a "." or ":", is "localhost", or
 * has uppercase letters (which a repository may not).
 */
function splitRegistry(name: string, defaultRegistry: string): { registry: string; remainder: string } {
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const isRegistry =
    slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first);
  if (!isRegistry) return { registry: defaultRegistry, remainder: name };
  return { registry: first, remainder: name.slice(slash + 1) };
}

function normaliseRegistry(registry: string): string {
  return DOCKER_HUB_ALIASES.has(registry) ? DOCKER_HUB : registry;
}

export function parseReference(input: string, opts: ParseReferenceOptions = {}): Reference {
  if (input === '') throw invalid(input, 'reference is empty');
  if (IMAGE_ID_RE.test(input)) {
    throw invalid(input, 'a 64-character hex string is an image ID, not a reference');
  }

  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(d);
      digest = d as Digest;
    } catch (e) {
      const why = e instanceof S2nError ? e.message.replace(/^parse digest "[^"]*": /, '') : String(e);
      throw invalid(input, `bad digest "${d}": ${why}`);
    }
  }

  // The tag is after the last ":" that follows the last "/" (a ":" before
  // the last "/" belongs to the registry's port).
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/') && !rest.slice(colon).includes(']')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag === '') throw invalid(input, 'tag is empty');
    if (!TAG_RE.test(tag)) {
      throw invalid(input, `tag "${tag}" must be 1-128 letters, digits, "_", "." or "-", not starting with "." or "-"`);
    }
  }

  if (rest === '') throw invalid(input, 'repository name is empty');

  const defaultRegistry = opts.defaultRegistry ?? DOCKER_HUB;
  const split = splitRegistry(rest, defaultRegistry);
  const registry = normaliseRegistry(split.registry);
  let repository = split.remainder;

  const registryIssue = registryProblem(registry);
  if (registryIssue !== undefined) throw invalid(input, registryIssue);
  if (repository === '') throw invalid(input, 'repository name is empty');
  if (/[A-Z]/.test(repository)) throw invalid(input, `repository name "${repository}" must be lowercase`);
  for (const part of repository.split('/')) {
    if (part === '') throw invalid(input, `repository name "${repository}" has an empty path component`);
    if (!PATH_COMPONENT_RE.test(part)) {
      throw invalid(
        input,
        `path component "${part}" must be lowercase letters and digits, separated by ".", "_", "__" or "-"`,
      );
    }
  }
  // Docker Hub keeps official images under library/.
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;

  const fullName = `${registry}/${repository}`;
  if (fullName.length > NAME_TOTAL_MAX) {
    throw invalid(input, `name is ${fullName.length} characters long, the limit is ${NAME_TOTAL_MAX}`);
  }

  const ref: Reference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  else if (digest === undefined) ref.tag = DEFAULT_TAG;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `registry/repository`, without tag or digest. */
export function referenceName(r: Reference): string {
  return `${r.registry}/${r.repository}`;
}

function suffix(r: Reference): string {
  return `${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** Canonical full form: `registry/repository[:tag][@digest]`. */
export function formatReference(r: Reference): string {
  return `${referenceName(r)}${suffix(r)}`;
}

/** The short form docker prints: `alpine:latest`, `user/app:1`, `localhost:5000/x:y`. */
export function familiarReference(r: Reference): string {
  let name = referenceName(r);
  if (r.registry === DOCKER_HUB) {
    name = r.repository;
    const official = name.slice('library/'.length);
    if (name.startsWith('library/') && !official.includes('/')) name = official;
  }
  return `${name}${suffix(r)}`;
}

/** The host that actually serves the registry API (Docker Hub's differs from its name). */
export function registryApiHost(registry: string): string {
  return normaliseRegistry(registry) === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** The ref name an image is stored under; tag and digest both kept. */
export function referenceForStore(r: Reference): string {
  return formatReference(r);
}
