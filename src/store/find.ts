/** Finding an image of the store by what a user types: a reference, a full digest or an id prefix. */
import { S2nError } from '../errors.js';
import { Limits } from '../oci/limits.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/types.js';
import { Annotation } from '../oci/types.js';
import { parseManifestBlob, validateImageConfig } from '../oci/validate.js';
import type { ContentStore } from './store.js';

/**
 * How image metadata is read back. By default every read re-hashes the
 * manifest and config. `verify: false` (a warm run) checks their sizes and
 * schemas only: the store verified them when it took them in. A run
 * trusts the unpacked rootfs cache the same way, as docker and podman trust
 * their stores. Hashing would mean loading node:crypto, ~3 ms per start.
 */
export interface ReadImageOptions {
  verify?: boolean;
}

/** One named image in the store, with its manifest and config read and validated. */
export interface StoredImage {
  /** Names (full references) pointing at this manifest. */
  names: string[];
  manifestDesc: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** Compressed size of config + layers, as stored. */
  size: number;
  indexDigest?: string;
}

const hexId = /^(sha256:)?[a-f0-9]{12,64}$/;

/**
 * Finds an image the way docker does: by name (`alpine` means
 * docker.io/library/alpine:latest), by full digest, or by an id prefix of
 * at least 12 hex digits (the manifest or config digest).
 */
export async function findImage(store: ContentStore, input: string, o: ReadImageOptions = {}): Promise<StoredImage> {
  const all = await store.list();
  let matches: Array<{ name: string; descriptor: Descriptor }> = [];
  if (hexId.test(input)) {
    const hex = input.replace(/^sha256:/, '');
    matches = all.filter((e) => digestHex(e.descriptor.digest).startsWith(hex));
    if (matches.length === 0) {
      // Also accept the image id docker shows: the config digest.
      for (const e of all) {
        const img = await readImage(store, e.descriptor, [e.name], o);
        if (digestHex(img.manifest.config.digest).startsWith(hex)) matches.push(e);
      }
    }
  } else {
    const ref = parseReference(input);
    const name = formatReference(ref);
    matches = all.filter((e) => e.name === name);
    if (matches.length === 0 && ref.digest) matches = all.filter((e) => e.descriptor.digest === ref.digest);
    if (matches.length === 0 && ref.digest) matches = all.filter((e) => e.descriptor.annotations?.[Annotation.indexDigest] === ref.digest);
  }
  const digests = new Set(matches.map((m) => m.descriptor.digest));
  const first = matches[0];
  if (!first) {
    throw new S2nError('EIMAGE', `find image ${input}: not in the store`, {
      hint: `pull it with \`s2n-oci pull ${input}\`, or load it with \`s2n-oci load -i FILE\`; \`s2n-oci images\` lists what is there`,
      context: { reference: input, store: store.root },
    });
  }
  if (digests.size > 1) {
    throw new S2nError('EIMAGE', `find image ${input}: the id prefix matches ${digests.size} images`, {
      hint: 'give more digits of the digest',
      context: { reference: input, matches: [...digests] },
    });
  }
  const names = all.filter((e) => e.descriptor.digest === first.descriptor.digest).map((e) => e.name);
  return readImage(store, first.descriptor, names, o);
}

/** Reads and validates one image's manifest and config from the store. */
export async function readImage(store: ContentStore, manifestDesc: Descriptor, names: string[], o: ReadImageOptions = {}): Promise<StoredImage> {
  const what = names[0] ?? manifestDesc.digest;
  const parsed = parseManifestBlob(await store.readBlob(manifestDesc, Limits.manifestBytes, o), manifestDesc, { reference: what });
  if (parsed.kind !== 'manifest') {
    throw new S2nError('ESTORE', `read image ${what}: the stored descriptor points at an index, not a manifest`, {
      hint: 'remove it with `s2n-oci rmi` and pull it again',
      context: { digest: manifestDesc.digest },
    });
  }
  const manifest = parsed.manifest;
  const configBytes = await store.readBlob(manifest.config, Limits.configBytes, o);
  const config = validateImageConfig(JSON.parse(configBytes.toString('utf8')) as unknown, { what: `config of ${what}` });
  const size = manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0);
  const indexDigest = manifestDesc.annotations?.[Annotation.indexDigest];
  return { names, manifestDesc, manifest, config, size, ...(indexDigest ? { indexDigest } : {}) };
}

/** The store name `input` (a reference, a full digest or an id prefix) stands for; EIMAGE when none. */
export async function storeNameOf(store: ContentStore, input: string): Promise<string> {
  const img = await findImage(store, input);
  // Several names may share one manifest: prefer the one the user typed.
  let typed: string | undefined;
  try {
    typed = formatReference(parseReference(input));
  } catch {
    typed = undefined;
  }
  const name = typed !== undefined && img.names.includes(typed) ? typed : img.names[0];
  if (name === undefined) throw new S2nError('EIMAGE', `find image ${input}: it has no name in the store`, { context: { reference: input } });
  return name;
}

/** True for a store name that is a real reference (not an untagged image kept under its digest). */
export function isNamedReference(name: string): boolean {
  if (/^sha(256|512):/.test(name)) return false;
  try {
    parseReference(name);
    return true;
  } catch {
    return false;
  }
}

function digestHex(d: string): string {
  return d.slice(d.indexOf(':') + 1);
}
