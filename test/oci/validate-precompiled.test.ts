/**
 * The standalone validators the build generates (dist/src/oci/validators.*.generated.cjs,
 * what the CLI uses) against the same schemas compiled by ajv at run time
 * (what vitest on src/ uses): same verdict and same errors on every
 * document, formats (date-time, uri) included.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCHEMA_FILES, createSchemaAjv, schemaFolder, schemaKey, type SchemaFolder, type SchemaName } from '../../src/oci/schemas.js';
import type { Validator } from '../../src/oci/validate.js';
import { REPO_ROOT } from '../helpers/cli.js';

const names = Object.keys(SCHEMA_FILES) as SchemaName[];

function precompiled(folder: SchemaFolder): Partial<Record<SchemaName, Validator<unknown>>> {
  const path = join(REPO_ROOT, 'dist', 'src', 'oci', `validators.${folder}.generated.cjs`);
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build\` (npm test does)`);
  return createRequire(import.meta.url)(path) as Partial<Record<SchemaName, Validator<unknown>>>;
}

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
}

/** Fixtures, and variants that break formats, types, patterns and required fields. */
function corpus(): unknown[] {
  const docs: unknown[] = ['oci-config.json', 'docker-config.json', 'oci-manifest.json', 'docker-manifest.json', 'oci-index.json', 'docker-manifest-list.json', 'runtime-config.json'].map(fixture);
  const config = fixture('oci-config.json');
  docs.push({ ...config, created: 'yesterday' }, { ...config, created: '2015-13-45T99:00:00Z' }, { ...config, rootfs: { type: 'layers' } });
  const manifest = fixture('oci-manifest.json');
  const layer = (manifest['layers'] as Array<Record<string, unknown>>)[0];
  docs.push(
    { ...manifest, layers: [{ ...layer, urls: ['not a uri'] }] },
    { ...manifest, layers: [{ ...layer, urls: ['https://example.com/blob'] }] },
    { ...manifest, layers: [{ ...layer, digest: 'sha256:XYZ', size: -1 }] },
    { ...manifest, schemaVersion: 1, config: 'nope' },
  );
  docs.push({}, [], null, 'text', 42, { schemaVersion: 2, manifests: [{}] });
  return docs;
}

describe('precompiled validators', () => {
  it('exist for every schema', () => {
    for (const name of names) expect(typeof precompiled(schemaFolder(name))[name]).toBe('function');
  });

  it('judge and report every document exactly as ajv compiling at run time does', () => {
    const ajv = createSchemaAjv();
    const docs = corpus();
    let invalid = 0;
    for (const name of names) {
      const compiled = ajv.getSchema(schemaKey(name));
      const standalone = precompiled(schemaFolder(name))[name];
      if (!compiled || !standalone) throw new Error(`no validator for ${name}`);
      for (const doc of docs) {
        const want = compiled(structuredClone(doc));
        const got = standalone(structuredClone(doc));
        expect({ name, doc, valid: got, errors: standalone.errors ?? null }).toEqual({ name, doc, valid: want, errors: compiled.errors ?? null });
        if (!got) invalid++;
      }
    }
    // The corpus exercises the error paths, not only acceptance.
    expect(invalid).toBeGreaterThan(docs.length);
  });

  it('check formats: a bad date-time or uri is refused, a good one accepted', () => {
    const config = precompiled('image-spec').config;
    const manifest = precompiled('image-spec').manifest;
    if (!config || !manifest) throw new Error('missing validators');
    const c = fixture('oci-config.json');
    expect(config(c)).toBe(true);
    expect(config({ ...c, created: 'yesterday' })).toBe(false);
    expect(config.errors?.[0]).toMatchObject({ keyword: 'format', params: { format: 'date-time' } });
    const m = fixture('oci-manifest.json');
    const layer = (m['layers'] as Array<Record<string, unknown>>)[0];
    expect(manifest({ ...m, layers: [{ ...layer, urls: ['https://example.com/x'] }] })).toBe(true);
    expect(manifest({ ...m, layers: [{ ...layer, urls: ['not a uri'] }] })).toBe(false);
    expect(manifest.errors?.some((e) => e.keyword === 'format' && e.params['format'] === 'uri')).toBe(true);
  });
});
