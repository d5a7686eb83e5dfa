import { describe, it, expect } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S2nError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import type { Descriptor } from '../../src/oci/types.js';
import {
  compileAllSchemas,
  describeErrors,
  findSpecDir,
  parseManifestBlob,
  validateImageConfig,
  validateIndex,
  validateManifest,
  validateRuntimeConfig,
} from '../../src/oci/validate.js';

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
}

function clone<T>(x: T): T {
  return structuredClone(x);
}

function caught(f: () => unknown): S2nError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(S2nError);
    return e as S2nError;
  }
  throw new Error('expected an error');
}

const what = { what: 'sha256:0123456789ab… of example.com/app:1' };

describe('schemas', () => {
  it('finds spec/ above the module and compiles every schema with all cross refs resolved', () => {
    expect(findSpecDir()).toMatch(/spec$/);
    expect(() => compileAllSchemas()).not.toThrow();
  });

  it('finds spec/ from a deeper folder (as dist/src/oci would be)', () => {
    const root = mkdtempSync(join(tmpdir(), 's2n-spec-'));
    try {
      mkdirSync(join(root, 'spec', 'image-spec'), { recursive: true });
      mkdirSync(join(root, 'dist', 'src', 'oci'), { recursive: true });
      expect(findSpecDir(join(root, 'dist', 'src', 'oci'))).toBe(join(root, 'spec'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('reports a missing spec folder as EINTERNAL', () => {
    expect(caught(() => findSpecDir('/')).code).toBe('EINTERNAL');
  });
});

describe('validateManifest', () => {
  it('accepts an OCI manifest (layers of every kind, subject, annotations, sha512)', () => {
    const m = validateManifest(fixture('oci-manifest.json'), what);
    expect(m.layers).toHaveLength(3);
    expect(m.subject?.size).toBe(7682);
  });

  it('accepts a Docker schema2 manifest, foreign layers with urls included', () => {
    const m = validateManifest(fixture('docker-manifest.json'), what);
    expect(m.mediaType).toBe(MediaType.dockerManifest);
    expect(m.config.mediaType).toBe(MediaType.dockerConfig);
  });

  it('accepts a manifest without mediaType (it is optional in the spec)', () => {
    const m = fixture('oci-manifest.json');
    delete m['mediaType'];
    expect(() => validateManifest(m, what)).not.toThrow();
  });

  const base = fixture('oci-manifest.json');
  it.each<[string, (m: Record<string, unknown>) => void, RegExp]>([
    ['bad layer digest', (m) => ((m['layers'] as Array<Record<string, unknown>>)[0]!['digest'] = 'sha256:NOT HEX'), /\/layers\/0\/digest must match pattern/],
    ['missing layers', (m) => delete m['layers'], /\(root\) must have required property 'layers'/],
    ['empty layers', (m) => (m['layers'] = []), /\/layers must NOT have fewer than 1 items/],
    ['missing config', (m) => delete m['config'], /must have required property 'config'/],
    ['schemaVersion 3', (m) => (m['schemaVersion'] = 3), /\/schemaVersion must be <= 2/],
    ['schemaVersion "2"', (m) => (m['schemaVersion'] = '2'), /\/schemaVersion must be integer/],
    ['config size as a string', (m) => ((m['config'] as Record<string, unknown>)['size'] = '7023'), /\/config\/size must be integer/],
    ['negative layer size', (m) => ((m['layers'] as Array<Record<string, unknown>>)[1]!['size'] = -5), /\/layers\/1\/size must be >= 0/],
    ['layer digest of unknown algorithm', (m) => ((m['layers'] as Array<Record<string, unknown>>)[0]!['digest'] = 'md5:abc'), /\/layers\/0\/digest must be sha256/],
    ['short config digest', (m) => ((m['config'] as Record<string, unknown>)['digest'] = 'sha256:abc'), /\/config\/digest must be sha256/],
    ['index media type', (m) => (m['mediaType'] = MediaType.ociIndex), /mediaType "application\/vnd.oci.image.index.v1\+json" is not an image manifest type/],
    ['annotation value not a string', (m) => (m['annotations'] = { a: 1 }), /\/annotations\/a must be string/],
    ['not an object', (m) => { for (const k of Object.keys(m)) delete m[k]; }, /must have required property/],
  ])('refuses %s', (_name, mutate, message) => {
    const m = clone(base);
    mutate(m);
    const e = caught(() => validateManifest(m, what));
    expect(e.code).toBe('EMANIFEST');
    expect(e.message.startsWith(`invalid image manifest ${what.what}: `)).toBe(true);
    expect(e.message).toMatch(message);
    expect(e.hint).toBe('the image is malformed; ask its publisher or try another tag');
  });

  it('refuses non-objects', () => {
    for (const x of [null, [], 'manifest', 2]) expect(caught(() => validateManifest(x, what)).code).toBe('EMANIFEST');
  });

  it('shows at most three problems', () => {
    const m = clone(base);
    m['layers'] = [{}, {}];
    const e = caught(() => validateManifest(m, what));
    expect(e.message.split('; ')).toHaveLength(3);
    expect(e.message).toMatch(/\(and \d+ more\)$/);
  });
});

describe('validateIndex', () => {
  it('accepts an OCI index with a buildx attestation entry', () => {
    expect(validateIndex(fixture('oci-index.json'), what).manifests).toHaveLength(3);
  });

  it('accepts a Docker manifest list (Windows entries with os.version and features too)', () => {
    const idx = validateIndex(fixture('docker-manifest-list.json'), what);
    expect(idx.manifests.map((m) => m.platform?.architecture)).toEqual(['amd64', 'arm', 'arm64', 'amd64']);
  });

  it('accepts an empty index', () => {
    expect(() => validateIndex({ schemaVersion: 2, manifests: [] }, what)).not.toThrow();
  });

  it.each<[string, (m: Record<string, unknown>) => void, RegExp]>([
    ['missing manifests', (m) => delete m['manifests'], /must have required property 'manifests'/],
    ['platform without os', (m) => delete (m['manifests'] as Array<{ platform: Record<string, unknown> }>)[0]!.platform['os'], /\/manifests\/0\/platform must have required property 'os'/],
    ['bad digest', (m) => ((m['manifests'] as Array<Record<string, unknown>>)[1]!['digest'] = 'sha256'), /\/manifests\/1\/digest must match pattern/],
    ['schemaVersion 1', (m) => (m['schemaVersion'] = 1), /\/schemaVersion must be >= 2/],
    ['manifest media type', (m) => (m['mediaType'] = MediaType.ociManifest), /is not an image index type/],
    ['negative size', (m) => ((m['manifests'] as Array<Record<string, unknown>>)[2]!['size'] = -1), /\/manifests\/2\/size must be >= 0/],
  ])('refuses %s', (_name, mutate, message) => {
    const m = clone(fixture('oci-index.json'));
    mutate(m);
    const e = caught(() => validateIndex(m, what));
    expect(e.code).toBe('EMANIFEST');
    expect(e.message.startsWith(`invalid image index ${what.what}: `)).toBe(true);
    expect(e.message).toMatch(message);
  });
});

describe('validateImageConfig', () => {
  it('accepts an OCI config', () => {
    const c = validateImageConfig(fixture('oci-config.json'), what);
    expect(c.config?.Entrypoint).toEqual(['/bin/my-app-binary']);
    expect(c.rootfs.diff_ids).toHaveLength(2);
  });

  it('accepts a Docker container config, extra fields and nulls included', () => {
    const c = validateImageConfig(fixture('docker-config.json'), what);
    expect(c.config?.Cmd).toEqual(['nginx', '-g', 'daemon off;']);
    expect(c.config?.StopSignal).toBe('SIGQUIT');
  });

  it('treats Docker nulls (Go nil) as absent', () => {
    const c = fixture('docker-config.json');
    const cfg = c['config'] as Record<string, unknown>;
    cfg['Env'] = null;
    cfg['ExposedPorts'] = null;
    cfg['Cmd'] = null;
    cfg['Labels'] = null;
    const out = validateImageConfig(c, what);
    expect(out.config?.Env).toBeUndefined();
    expect(out.config?.Cmd).toBeUndefined();
    expect('ExposedPorts' in (out.config ?? {})).toBe(false);
    // the input is not modified
    expect(cfg['Env']).toBeNull();
    const noConfig = fixture('oci-config.json');
    noConfig['config'] = null;
    expect(validateImageConfig(noConfig, what).config).toBeUndefined();
  });

  it('accepts a minimal config (scratch image with no layers)', () => {
    expect(() =>
      validateImageConfig({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, what),
    ).not.toThrow();
  });

  it.each<[string, (c: Record<string, unknown>) => void, RegExp]>([
    ['missing rootfs', (c) => delete c['rootfs'], /must have required property 'rootfs'/],
    ['missing os', (c) => delete c['os'], /must have required property 'os'/],
    ['rootfs type', (c) => ((c['rootfs'] as Record<string, unknown>)['type'] = 'layer'), /\/rootfs\/type must be equal to one of the allowed values \("layers"\)/],
    ['bad created date', (c) => (c['created'] = 'yesterday'), /\/created must match format "date-time"/],
    ['Env not an array', (c) => ((c['config'] as Record<string, unknown>)['Env'] = 'A=b'), /\/config\/Env must be array/],
    ['bad diff_id', (c) => ((c['rootfs'] as { diff_ids: string[] }).diff_ids[1] = 'sha256:xyz'), /\/rootfs\/diff_ids\/1 must be sha256/],
  ])('refuses %s', (_name, mutate, message) => {
    const c = clone(fixture('oci-config.json'));
    mutate(c);
    const e = caught(() => validateImageConfig(c, what));
    expect(e.code).toBe('EMANIFEST');
    expect(e.message.startsWith(`invalid image config ${what.what}: `)).toBe(true);
    expect(e.message).toMatch(message);
  });
});

describe('validateRuntimeConfig', () => {
  it('accepts a rootless runc-style config.json', () => {
    expect(() => validateRuntimeConfig(fixture('runtime-config.json'))).not.toThrow();
  });

  it('accepts other platform sections as objects (their schemas are not vendored)', () => {
    const c = fixture('runtime-config.json');
    c['windows'] = { layerFolders: ['C:\\layers'] };
    expect(() => validateRuntimeConfig(c)).not.toThrow();
    c['windows'] = 'nope';
    expect(() => validateRuntimeConfig(c)).toThrow(/\/windows must be object/);
  });

  it('refuses a broken one as an internal error', () => {
    const c = fixture('runtime-config.json');
    delete c['ociVersion'];
    (c['linux'] as Record<string, unknown>)['namespaces'] = [{ type: 'bogus' }];
    const e = caught(() => validateRuntimeConfig(c));
    expect(e.code).toBe('EINTERNAL');
    expect(e.message).toMatch(/^validate runtime config: /);
    expect(e.message).toMatch(/ociVersion/);
    expect(e.message).toMatch(/\/linux\/namespaces\/0\/type must be equal to one of the allowed values/);
  });
});

describe('describeErrors', () => {
  it('handles no errors', () => {
    expect(describeErrors(null)).toBe('does not match its schema');
  });
});

function blob(doc: unknown, mediaType: string): { bytes: Buffer; desc: Descriptor } {
  const bytes = Buffer.from(JSON.stringify(doc));
  return { bytes, desc: { mediaType, digest: sha256Digest(bytes), size: bytes.length } };
}

const ref = { reference: 'docker.io/library/nginx:latest' };

describe('parseManifestBlob', () => {
  it.each<[string, string, 'index' | 'manifest']>([
    ['oci-manifest.json', MediaType.ociManifest, 'manifest'],
    ['oci-index.json', MediaType.ociIndex, 'index'],
    ['docker-manifest.json', MediaType.dockerManifest, 'manifest'],
    ['docker-manifest-list.json', MediaType.dockerManifestList, 'index'],
  ])('reads %s', (file, mt, kind) => {
    const { bytes, desc } = blob(fixture(file), mt);
    const r = parseManifestBlob(bytes, desc, ref);
    expect(r.kind).toBe(kind);
    if (r.kind === 'index') expect(r.index.manifests.length).toBeGreaterThan(0);
    else expect(r.manifest.layers.length).toBeGreaterThan(0);
  });

  it('uses the descriptor type when the body has none', () => {
    const doc = fixture('oci-index.json');
    delete doc['mediaType'];
    const { bytes, desc } = blob(doc, MediaType.ociIndex);
    expect(parseManifestBlob(bytes, desc, ref).kind).toBe('index');
  });

  it('falls back to the shape when neither says', () => {
    const idx = fixture('oci-index.json');
    delete idx['mediaType'];
    const a = blob(idx, 'application/octet-stream');
    expect(parseManifestBlob(a.bytes, a.desc, ref).kind).toBe('index');
    const man = fixture('oci-manifest.json');
    delete man['mediaType'];
    const b = blob(man, 'application/json');
    expect(parseManifestBlob(b.bytes, b.desc, ref).kind).toBe('manifest');
  });

  it('refuses a body that is neither', () => {
    const { bytes, desc } = blob({ schemaVersion: 2 }, 'application/octet-stream');
    const e = caught(() => parseManifestBlob(bytes, desc, ref));
    expect(e.code).toBe('EMANIFEST');
    expect(e.message).toMatch(/neither an image manifest nor an index/);
  });

  it('refuses invalid JSON clearly', () => {
    const bytes = Buffer.from('{"schemaVersion": 2,');
    const desc: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256Digest(bytes), size: bytes.length };
    const e = caught(() => parseManifestBlob(bytes, desc, ref));
    expect(e.code).toBe('EMANIFEST');
    expect(e.message).toMatch(/^parse manifest sha256:[0-9a-f]{12}… of docker\.io\/library\/nginx:latest: not valid JSON \(/);
    expect(e.context).toMatchObject({ reference: ref.reference, digest: desc.digest });
  });

  it('refuses JSON that is not an object', () => {
    for (const doc of [[], null, 'x', 3]) {
      const { bytes, desc } = blob(doc, MediaType.ociManifest);
      expect(caught(() => parseManifestBlob(bytes, desc, ref)).message).toMatch(/expected a JSON object/);
    }
  });

  it('refuses a body type that disagrees with the descriptor', () => {
    const { bytes, desc } = blob(fixture('docker-manifest.json'), MediaType.ociManifest);
    const e = caught(() => parseManifestBlob(bytes, desc, ref));
    expect(e.code).toBe('EMANIFEST');
    expect(e.message).toMatch(/content says mediaType "application\/vnd.docker.distribution.manifest.v2\+json" but was served as "application\/vnd.oci.image.manifest.v1\+json"/);
    const list = blob(fixture('oci-index.json'), MediaType.ociManifest);
    expect(caught(() => parseManifestBlob(list.bytes, list.desc, ref)).code).toBe('EMANIFEST');
  });

  it('lets the body type decide when the descriptor type is generic', () => {
    const { bytes, desc } = blob(fixture('docker-manifest-list.json'), 'application/json');
    expect(parseManifestBlob(bytes, desc, ref).kind).toBe('index');
  });

  it('refuses unknown body media types', () => {
    const doc = fixture('oci-manifest.json');
    doc['mediaType'] = 'application/vnd.oci.artifact.manifest.v1+json';
    const { bytes, desc } = blob(doc, 'application/vnd.oci.artifact.manifest.v1+json');
    const e = caught(() => parseManifestBlob(bytes, desc, ref));
    expect(e.code).toBe('EMANIFEST');
    expect(e.message).toMatch(/unsupported media type "application\/vnd.oci.artifact.manifest.v1\+json"/);
  });

  it('validates what it reads', () => {
    const doc = fixture('oci-manifest.json');
    doc['layers'] = [];
    const { bytes, desc } = blob(doc, MediaType.ociManifest);
    const e = caught(() => parseManifestBlob(bytes, desc, ref));
    expect(e.code).toBe('EMANIFEST');
    expect(e.message).toMatch(/^invalid image manifest sha256:[0-9a-f]{12}… of docker\.io\/library\/nginx:latest: \/layers must NOT have fewer than 1 items$/);
  });

  const schema1 = {
    schemaVersion: 1,
    name: 'library/hello-world',
    tag: 'latest',
    architecture: 'amd64',
    fsLayers: [{ blobSum: 'sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4' }],
    history: [{ v1Compatibility: '{"id":"abc"}' }],
    signatures: [{ header: { alg: 'ES256' }, signature: 'xyz', protected: 'abc' }],
  };

  it.each<[string, unknown, string]>([
    ['schemaVersion 1 body', schema1, MediaType.dockerSchema1Signed],
    ['schemaVersion 1 body served as application/json', schema1, 'application/json'],
    ['schema1 body with no descriptor type hint', schema1, 'application/octet-stream'],
    ['schema1 descriptor type', { schemaVersion: 2, manifests: [] }, MediaType.dockerSchema1],
    ['schema1 body media type', { mediaType: MediaType.dockerSchema1, layers: [] }, MediaType.ociManifest],
    ['fsLayers without schemaVersion', { fsLayers: [] }, 'application/json'],
  ])('refuses Docker schema1: %s', (_name, doc, mt) => {
    const { bytes, desc } = blob(doc, mt);
    const e = caught(() => parseManifestBlob(bytes, desc, ref));
    expect(e.code).toBe('ESCHEMA1');
    expect(e.message).toBe('docker.io/library/nginx:latest uses the Docker schema1 manifest format, which s2n-oci does not support');
    expect(e.hint).toBe('schema1 is deprecated since 2017; re-push the image with a current docker/podman/skopeo');
  });
});
