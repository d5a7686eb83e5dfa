/**
 * A registry repository as an ImageSink (push): blobs are HEADed first and
 * skipped when present, mounted from `mountFrom` when the source is another
 * repository of the same registry, uploaded otherwise; the manifest is PUT by
 * digest when the copy engine writes it (after its blobs), and under each
 * tag by finish().
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { CopyResult } from '../copy.js';
import { S2nError } from '../errors.js';
import { isIndexType, isManifestType } from '../oci/mediatypes.js';
import { formatReference, parseReference, referenceName, type Reference } from '../oci/reference.js';
import type { Descriptor } from '../oci/types.js';
import { readVerified, verifyStream } from '../oci/verify.js';
import { Limits } from '../oci/limits.js';
import { createRegistryClient, type RegistryClient, type RegistryClientOptions } from '../sources/registry/client.js';
import type { ImageSink, PutOptions } from '../sources/source.js';

export interface RegistrySinkOptions extends RegistryClientOptions {
  /** Use this client (not closed by the sink). */
  client?: RegistryClient;
  /** A repository of the same registry the blobs can be mounted from. */
  mountFrom?: string;
}

export class RegistrySink implements ImageSink {
  readonly description: string;
  readonly client: RegistryClient;
  private readonly ownsClient: boolean;
  private readonly manifests = new Map<string, { bytes: Buffer; mediaType: string }>();

  constructor(
    readonly reference: Reference,
    private readonly o: RegistrySinkOptions = {},
  ) {
    this.description = `docker://${formatReference(reference)}`;
    const { client, mountFrom: _m, ...clientOptions } = o;
    this.ownsClient = client === undefined;
    this.client = client ?? createRegistryClient(reference.registry, { ...clientOptions, mirrors: false });
  }

  async has(desc: Descriptor): Promise<boolean> {
    // Manifests are always PUT (cheap, idempotent) so that finish() has their bytes to tag.
    if (isManifestLike(desc.mediaType)) return false;
    return this.client.hasBlob(this.reference.repository, desc);
  }

  async put(desc: Descriptor, data: Readable, opts: PutOptions = {}): Promise<void> {
    const signal = opts.signal ? { signal: opts.signal } : {};
    const repo = this.reference.repository;
    if (isManifestLike(desc.mediaType)) {
      const bytes = await readVerified(data, desc, Limits.manifestBytes);
      await this.client.putManifest(repo, desc.digest, bytes, desc.mediaType, signal);
      this.manifests.set(desc.digest, { bytes, mediaType: desc.mediaType });
      opts.onBytes?.(bytes.length);
      return;
    }
    if (this.o.mountFrom !== undefined && this.o.mountFrom !== repo && (await this.client.mountBlob(repo, desc, this.o.mountFrom, signal))) {
      data.destroy();
      opts.onBytes?.(desc.size);
      return;
    }
    // Checked on the way out too: a bad source fails here with EDIGEST, not as the registry's DIGEST_INVALID.
    const onBytes = opts.onBytes;
    const body = data.pipe(verifyStream(desc)).pipe(
      new Transform({
        transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
          onBytes?.(chunk.length);
          cb(null, chunk);
        },
      }),
    );
    data.once('error', (e) => body.destroy(e));
    await this.client.pushBlob(repo, desc, body, signal);
  }

  /** PUTs the manifest under the tag of every name (all must be this repository); by digest it is already there. */
  async finish(names: string[], result: CopyResult): Promise<void> {
    const m = this.manifests.get(result.manifestDesc.digest);
    if (!m) throw new S2nError('EINTERNAL', `push ${this.description}: manifest ${result.manifestDesc.digest} was not written`);
    for (const n of names) {
      const r = parseReference(n);
      if (referenceName(r) !== referenceName(this.reference)) {
        throw new S2nError('EUSAGE', `push ${n}: the destination is ${this.description}`, { context: { reference: n } });
      }
      if (r.tag !== undefined) await this.client.putManifest(r.repository, r.tag, m.bytes, m.mediaType);
    }
  }

  async close(): Promise<void> {
    this.manifests.clear();
    if (this.ownsClient) await this.client.close();
  }
}

function isManifestLike(mt: string): boolean {
  return isIndexType(mt) || isManifestType(mt);
}
