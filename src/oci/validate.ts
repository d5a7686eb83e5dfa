/**
 * Validators for the vendored OCI JSON schemas (see schemas.ts): the
 * standalone code scripts/build-validators.mjs generates at build time when
 * it is there (dist/), else compiled with ajv on first use (vitest on src/).
 * Both are the same ajv code, so they accept and report alike.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ErrorObject } from 'ajv';
import { S2nError } from '../errors.js';
import { isDigest, shortDigest } from './digest.js';
import { MediaType, isIndexType, isManifestType } from './mediatypes.js';
import { SCHEMA_FILES, createSchemaAjv, schemaFolder, schemaKey, type SchemaAjv, type SchemaFolder, type SchemaName } from './schemas.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from './types.js';

export { findSpecDir } from './schemas.js';

/** A schema check; on false, `errors` says why. */
export interface Validator<T> {
  (data: unknown): data is T;
  errors?: ErrorObject[] | null;
}

/** Written next to the compiled validate.js by the build; absent under vitest, which runs src/. */
export function precompiledPath(folder: SchemaFolder): string {
  return fileURLToPath(new URL(`./validators.${folder}.generated.cjs`, import.meta.url));
}

export type ValidatorModule = Partial<Record<SchemaName, Validator<unknown>>>;

/** By folder; null: no precompiled module, compile instead. */
const precompiled = new Map<SchemaFolder, ValidatorModule | null>();
/** Set by the CLI bundle, which carries the generated modules inside it (and so in its code cache). */
const provided = new Map<SchemaFolder, () => ValidatorModule>();
let ajv: SchemaAjv | undefined;

/** Where the generated module of `folder` comes from, instead of its file beside this one. */
export function providePrecompiled(folder: SchemaFolder, load: () => ValidatorModule): void {
  provided.set(folder, load);
  precompiled.delete(folder);
}

function loadPrecompiled(folder: SchemaFolder): ValidatorModule | null {
  let m = precompiled.get(folder);
  if (m === undefined) {
    const path = precompiledPath(folder);
    const load = provided.get(folder);
    m = load ? load() : existsSync(path) ? (createRequire(import.meta.url)(path) as ValidatorModule) : null;
    precompiled.set(folder, m);
  }
  return m;
}

function compile(name: SchemaName): Validator<unknown> {
  ajv ??= createSchemaAjv();
  const fn = ajv.getSchema(schemaKey(name));
  if (fn === undefined) {
    throw new S2nError('EINTERNAL', `load schemas: ${SCHEMA_FILES[name]} is missing`, {
      hint: 'the installation is incomplete; reinstall s2n-oci',
    });
  }
  return fn;
}

/** A validator loaded (or compiled) on first call. Missing $refs throw here, not at import. */
function lazy<T>(name: SchemaName): () => Validator<T> {
  let fn: Validator<T> | undefined;
  // A schema is what the type T describes; the cast states that once, here.
  return () => (fn ??= (loadPrecompiled(schemaFolder(name))?.[name] ?? compile(name)) as Validator<T>);
}

const manifestValidator = lazy<ImageManifest>('manifest');
const indexValidator = lazy<ImageIndex>('index');
const configValidator = lazy<ImageConfig>('config');
const runtimeConfigValidator = lazy<unknown>('runtimeConfig');

/** Load or compile every validator now (tests, and to fail fast on a broken install). */
export function compileAllSchemas(): void {
  for (const name of Object.keys(SCHEMA_FILES) as SchemaName[]) lazy<unknown>(name)();
}

function describeError(e: ErrorObject): string {
  const at = e.instancePath === '' ? '(root)' : e.instancePath;
  let detail = e.message ?? 'is invalid';
  const params: Record<string, unknown> = e.params;
  if (e.keyword === 'enum' && Array.isArray(params['allowedValues'])) {
    detail += ` (${params['allowedValues'].map((v) => JSON.stringify(v)).join(', ')})`;
  } else if (e.keyword === 'additionalProperties' && typeof params['additionalProperty'] === 'string') {
    detail += ` ("${params['additionalProperty']}")`;
  }
  return `${at} ${detail}`;
}

/** The first three problems, readable: "/layers/0/digest must match pattern …". */
export function describeErrors(errors: readonly ErrorObject[] | null | undefined): string {
  const list = errors ?? [];
  if (list.length === 0) return 'does not match its schema';
  const shown = list.slice(0, 3).map(describeError).join('; ');
  return list.length > 3 ? `${shown} (and ${list.length - 3} more)` : shown;
}

const MALFORMED_HINT = 'the image is malformed; ask its publisher or try another tag';

function malformed(kind: string, what: string, detail: string): S2nError {
  return new S2nError('EMANIFEST', `invalid ${kind} ${what}: ${detail}`, {
    hint: MALFORMED_HINT,
    context: { what },
  });
}

/** Size checks the schemas leave out (they allow any int64). */
function descriptorProblem(d: Descriptor, path: string, needDigest: boolean): string | undefined {
  if (d.size < 0) return `${path}/size must be >= 0`;
  if (!Number.isSafeInteger(d.size)) return `${path}/size is too large`;
  // Blobs we fetch must have a digest we can check; the schema's pattern admits any algorithm.
  if (needDigest && !isDigest(d.digest)) return `${path}/digest must be sha256:<64 hex> or sha512:<128 hex>`;
  return undefined;
}

export function validateManifest(x: unknown, ctx: { what: string }): ImageManifest {
  const v = manifestValidator();
  if (!v(x)) throw malformed('image manifest', ctx.what, describeErrors(v.errors));
  if (x.mediaType !== undefined && !isManifestType(x.mediaType)) {
    throw malformed('image manifest', ctx.what, `mediaType "${x.mediaType}" is not an image manifest type`);
  }
  const problem =
    descriptorProblem(x.config, '/config', true) ??
    x.layers.map((l, i) => descriptorProblem(l, `/layers/${i}`, true)).find((p) => p !== undefined);
  if (problem !== undefined) throw malformed('image manifest', ctx.what, problem);
  return x;
}

export function validateIndex(x: unknown, ctx: { what: string }): ImageIndex {
  const v = indexValidator();
  if (!v(x)) throw malformed('image index', ctx.what, describeErrors(v.errors));
  if (x.mediaType !== undefined && !isIndexType(x.mediaType)) {
    throw malformed('image index', ctx.what, `mediaType "${x.mediaType}" is not an image index type`);
  }
  // Only the entry we select gets fetched; its digest is checked then.
  const problem = x.manifests.map((m, i) => descriptorProblem(m, `/manifests/${i}`, false)).find((p) => p !== undefined);
  if (problem !== undefined) throw malformed('image index', ctx.what, problem);
  return x;
}

/**
 * Docker writes Go's nil slices and maps in the container config as `null`
 * (`"Env": null`, `"ExposedPorts": null`); they mean "not set", so we drop
 * them before validating rather than refuse most Docker-built images.
 */
function withoutNullConfigFields(x: unknown): unknown {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return x;
  const doc = x as Record<string, unknown>;
  const config = doc['config'];
  if (config === null) {
    const { config: _dropped, ...rest } = doc;
    return rest;
  }
  if (typeof config !== 'object' || Array.isArray(config)) return x;
  const cleaned = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== null));
  return { ...doc, config: cleaned };
}

export function validateImageConfig(x: unknown, ctx: { what: string }): ImageConfig {
  const doc = withoutNullConfigFields(x);
  const v = configValidator();
  if (!v(doc)) throw malformed('image config', ctx.what, describeErrors(v.errors));
  const bad = doc.rootfs.diff_ids.findIndex((d) => !isDigest(d));
  if (bad >= 0) throw malformed('image config', ctx.what, `/rootfs/diff_ids/${bad} must be sha256:<64 hex> or sha512:<128 hex>`);
  return doc;
}

/** Check a runtime-spec config.json we generated; a failure is our bug. */
export function validateRuntimeConfig(x: unknown): void {
  const v = runtimeConfigValidator();
  if (!v(x)) {
    throw new S2nError('EINTERNAL', `validate runtime config: ${describeErrors(v.errors)}`, {
      hint: 'this is a bug in s2n-oci; please report it with the command you ran',
    });
  }
}

export type ManifestBlob = { kind: 'index'; index: ImageIndex } | { kind: 'manifest'; manifest: ImageManifest };

const SCHEMA1_TYPES: ReadonlySet<string> = new Set([MediaType.dockerSchema1, MediaType.dockerSchema1Signed]);

function isKnownManifestOrIndex(mt: string | undefined): mt is string {
  return isManifestType(mt) || isIndexType(mt);
}

/**
 * Parse and validate manifest bytes (already digest-verified) and say whether
 * they are an index or a single-image manifest: by the body's mediaType, else
 * the descriptor's, else by shape. Docker schema1 is refused with ESCHEMA1.
 */
export function parseManifestBlob(bytes: Buffer, desc: Descriptor, ctx: { reference: string }): ManifestBlob {
  const what = `${shortDigest(desc.digest)} of ${ctx.reference}`;
  const context = { reference: ctx.reference, digest: desc.digest, mediaType: desc.mediaType };

  let body: unknown;
  try {
    body = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new S2nError('EMANIFEST', `parse manifest ${what}: not valid JSON (${(e as Error).message})`, {
      hint: MALFORMED_HINT,
      cause: e,
      context,
    });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new S2nError('EMANIFEST', `parse manifest ${what}: expected a JSON object`, { hint: MALFORMED_HINT, context });
  }
  const doc = body as Record<string, unknown>;
  const bodyType = typeof doc['mediaType'] === 'string' ? doc['mediaType'] : undefined;

  if (
    doc['schemaVersion'] === 1 ||
    Array.isArray(doc['fsLayers']) ||
    (bodyType !== undefined && SCHEMA1_TYPES.has(bodyType)) ||
    SCHEMA1_TYPES.has(desc.mediaType)
  ) {
    throw new S2nError('ESCHEMA1', `${ctx.reference} uses the Docker schema1 manifest format, which s2n-oci does not support`, {
      hint: 'schema1 is deprecated since 2017; re-push the image with a current docker/podman/skopeo',
      context,
    });
  }

  if (bodyType !== undefined && !isKnownManifestOrIndex(bodyType)) {
    throw new S2nError('EMANIFEST', `parse manifest ${what}: unsupported media type "${bodyType}"`, {
      hint: 's2n-oci reads OCI image manifests and indexes, and Docker schema2 manifests and manifest lists',
      context,
    });
  }
  // The descriptor vouches for the type; content claiming another is not what was asked for.
  if (bodyType !== undefined && isKnownManifestOrIndex(desc.mediaType) && bodyType !== desc.mediaType) {
    throw new S2nError('EMANIFEST', `parse manifest ${what}: content says mediaType "${bodyType}" but was served as "${desc.mediaType}"`, {
      hint: MALFORMED_HINT,
      context,
    });
  }

  let isIndex: boolean;
  const declared = bodyType ?? (isKnownManifestOrIndex(desc.mediaType) ? desc.mediaType : undefined);
  if (declared !== undefined) isIndex = isIndexType(declared);
  else if (Array.isArray(doc['manifests'])) isIndex = true;
  else if (Array.isArray(doc['layers']) || doc['config'] !== undefined) isIndex = false;
  else {
    throw new S2nError('EMANIFEST', `parse manifest ${what}: neither an image manifest nor an index (no mediaType, no "manifests" or "layers")`, {
      hint: MALFORMED_HINT,
      context,
    });
  }

  return isIndex
    ? { kind: 'index', index: validateIndex(body, { what }) }
    : { kind: 'manifest', manifest: validateManifest(body, { what }) };
}
