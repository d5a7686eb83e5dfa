/**
 * The vendored OCI JSON schemas (spec/) loaded into ajv, so what we accept is
 * what the specs say rather than our reading of them. Used two ways: at build
 * time scripts/build-validators.mjs turns them into standalone validator code
 * (dist/src/oci/validators.*.generated.cjs), and at run time validate.ts
 * compiles them here only when that file is missing (vitest runs src/).
 * ajv is loaded on the first createSchemaAjv() call, never at import.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type AjvDraft04Module from 'ajv-draft-04';
import type AddFormatsModule from 'ajv-formats';
import { S2nError } from '../errors.js';

export type SchemaAjv = InstanceType<typeof AjvDraft04Module.default>;

/** The validators we use, by the name validate.ts and the generated module export them under. */
export const SCHEMA_FILES = {
  manifest: 'image-spec/image-manifest-schema.json',
  index: 'image-spec/image-index-schema.json',
  config: 'image-spec/config-schema.json',
  contentDescriptor: 'image-spec/content-descriptor.json',
  imageLayout: 'image-spec/image-layout-schema.json',
  runtimeConfig: 'runtime-spec/config-schema.json',
  runtimeState: 'runtime-spec/state-schema.json',
  runtimeFeatures: 'runtime-spec/features-schema.json',
} as const;

export type SchemaName = keyof typeof SCHEMA_FILES;

export type SchemaFolder = 'image-spec' | 'runtime-spec';

/** Validators are generated one module per folder: a pull never loads the large runtime-spec one. */
export function schemaFolder(name: SchemaName): SchemaFolder {
  return SCHEMA_FILES[name].startsWith('runtime-spec/') ? 'runtime-spec' : 'image-spec';
}

/**
 * The nearest ancestor of this module's folder holding `spec/image-spec`:
 * src/oci/ under vitest and dist/src/oci/ after tsc sit at different depths.
 */
export function findSpecDir(start: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  for (;;) {
    const candidate = join(dir, 'spec');
    if (existsSync(join(candidate, 'image-spec'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new S2nError('EINTERNAL', `load schemas: no spec/image-spec folder above ${start}`, {
        hint: 'the installation is incomplete; reinstall s2n-oci',
      });
    }
    dir = parent;
  }
}

/**
 * Our own base URLs for the two schema folders. The image-spec files carry
 * `id` URLs that put them at different virtual paths (…/schema/descriptor,
 * …/schema/image/manifest, nested ids too) while referring to each other by
 * bare file name, and the runtime-spec files have no ids at all. Both mean
 * "the file of that name in this folder", so we drop the ids and register
 * every file by name under one base per folder.
 */
export const SCHEMA_BASE = 'https://s2n-oci.invalid/spec/';

/**
 * The runtime-spec config schema refers to the Solaris, Windows, VM and z/OS
 * sections in files that are not vendored (we only generate Linux configs);
 * when a file is absent, its section accepts any object.
 */
const NON_LINUX_SECTIONS: Record<string, string> = {
  'config-solaris.json': 'solaris',
  'config-windows.json': 'windows',
  'config-vm.json': 'vm',
  'config-zos.json': 'zos',
};

/** Keywords whose values are data, not subschemas: an `id` inside them is not a schema id. */
const DATA_KEYWORDS = new Set(['enum', 'default', 'examples', 'const', 'required']);

function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (typeof node !== 'object' || node === null) return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'id' && typeof v === 'string') continue;
    out[k] = DATA_KEYWORDS.has(k) ? v : withoutIds(v);
  }
  return out;
}

function loadFolder(ajv: SchemaAjv, specDir: string, folder: string): void {
  const dir = join(specDir, folder);
  const names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  for (const name of names) {
    const json: unknown = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    ajv.addSchema(withoutIds(json) as object, `${SCHEMA_BASE}${folder}/${name}`);
  }
  if (folder === 'runtime-spec') {
    for (const [name, section] of Object.entries(NON_LINUX_SECTIONS)) {
      if (!names.includes(name)) ajv.addSchema({ [section]: { type: 'object' } }, `${SCHEMA_BASE}${folder}/${name}`);
    }
  }
}

/**
 * An ajv instance holding every vendored schema (none compiled yet).
 * `source` keeps the generated code, which ajv's standalone module needs.
 */
export function createSchemaAjv(o: { source?: boolean; specDir?: string } = {}): SchemaAjv {
  // Loaded here rather than imported: ajv takes ~50 ms to load, and only this fallback and the build need it.
  const require = createRequire(import.meta.url);
  // Both packages are CommonJS with the class/function on `.default` as well as module.exports.
  const Ajv = (require('ajv-draft-04') as typeof AjvDraft04Module).default;
  const addFormats = (require('ajv-formats') as typeof AddFormatsModule).default;
  // strict mode is for schemas we write; these are vendored as published.
  const ajv = new Ajv({ allErrors: true, strict: false, ...(o.source ? { code: { source: true } } : {}) });
  addFormats(ajv);
  const specDir = o.specDir ?? findSpecDir();
  loadFolder(ajv, specDir, 'image-spec');
  loadFolder(ajv, specDir, 'runtime-spec');
  return ajv;
}

/** The schema's key in an ajv made by createSchemaAjv(). */
export function schemaKey(name: SchemaName): string {
  return `${SCHEMA_BASE}${SCHEMA_FILES[name]}`;
}
