/**
 * The registry as an ImageSource: `resolve()` reads the root manifest (by
 * digest when the reference has one, else by tag) and keeps its body, so the
 * copy engine's next `fetch` of that digest costs no request. Manifests come
 * through the manifest endpoint, everything else through the (resuming) blob
 * endpoint.
 */
import { Readable } from 'node:stream';
import { isIndexType, isManifestType, MediaType } from '../../oci/mediatypes.js';
import { formatReference, type Reference } from '../../oci/reference.js';
import type { Descriptor } from '../../oci/types.js';
import type { FetchOptions, ImageSource } from '../source.js';
import { createRegistryClient, RegistryClient, type RegistryClientOptions } from './client.js';

export { createRegistryClient, RegistryClient } from './client.js';

export interface RegistrySourceOptions extends RegistryClientOptions {
  /** Use this client (not closed by the source); default a new one for the reference's registry. */
  client?: RegistryClient;
  /** Largest manifest or index accepted (ELIMIT beyond); default 4 MiB like containerd. */
  maxManifestBytes?: number;
}

export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

function isManifestLike(mt: string): boolean {
  return isIndexType(mt) || isManifestType(mt) || mt === MediaType.dockerSchema1 || mt === MediaType.dockerSchema1Signed;
}

export class RegistrySource implements ImageSource {
  readonly description: string;
  readonly reference: Reference;
  readonly client: RegistryClient;
  private readonly ownsClient: boolean;
  private readonly maxManifestBytes: number;
  /** Manifest bodies already read, by digest. */
  private readonly manifests = new Map<string, Buffer>();

  constructor(reference: Reference, o: RegistrySourceOptions = {}) {
    this.reference = reference;
    this.description = `docker://${formatReference(reference)}`;
    const { client, maxManifestBytes, ...clientOptions } = o;
    this.ownsClient = client === undefined;
    this.client = client ?? createRegistryClient(reference.registry, clientOptions);
    this.maxManifestBytes = maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
  }

  async resolve(opts: FetchOptions = {}): Promise<Descriptor> {
    const ref = this.reference.digest ?? this.reference.tag ?? 'latest';
    const m = await this.client.getManifest(this.reference.repository, ref, {
      maxBytes: this.maxManifestBytes,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    this.manifests.set(m.descriptor.digest, m.body);
    return m.descriptor;
  }

  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    if (isManifestLike(desc.mediaType)) {
      let body = this.manifests.get(desc.digest);
      if (body === undefined) {
        const m = await this.client.getManifest(this.reference.repository, desc.digest, {
          maxBytes: this.maxManifestBytes,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        body = m.body;
        this.manifests.set(desc.digest, body);
      }
      return Readable.from([body], { objectMode: false });
    }
    return this.client.getBlob(this.reference.repository, desc, opts.signal ? { signal: opts.signal } : {});
  }

  async close(): Promise<void> {
    this.manifests.clear();
    if (this.ownsClient) await this.client.close();
  }
}

export function openRegistrySource(reference: Reference, o: RegistrySourceOptions = {}): RegistrySource {
  return new RegistrySource(reference, o);
}
