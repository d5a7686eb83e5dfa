/**
 * OCI image layouts (image-spec image-layout.md) as ImageSources: a
 * directory, or the same tree in a tar file (`oci-archive`), read through an
 * ArchiveReader. Each entry of index.json is an image (a manifest or an
 * index; the copy engine walks indexes and picks the platform). Entries are
 * known by `org.opencontainers.image.ref.name` (a tag like `latest`, or a full
 * reference) and, in Docker ≥ 25 and containerd exports, by
 * `io.containerd.image.name` (the full reference).
 */
import { S2nError } from '../errors.js';
import type { Descriptor } from '../oci/types.js';
import { Annotation } from '../oci/types.js';
import { validateIndex } from '../oci/validate.js';
import { ArchiveLimits } from './archive/limits.js';
import { blobEntryName, blobMissingError, parseArchiveJson, readSmallFile, requireFile, type ArchiveReader } from './archive/reader.js';
import { archiveError } from './archive/tar-format.js';
import type { FetchOptions, ImageSource } from './source.js';
import type { Readable } from 'node:stream';

export const LAYOUT_VERSION = '1.0.0';
/** The annotation containerd and Docker ≥ 25 put on index.json entries: the full image name. */
export const CONTAINERD_IMAGE_NAME = 'io.containerd.image.name';

export interface OciLayoutImage {
  /** Position in index.json. */
  index: number;
  /** The entry as index.json has it (annotations included). */
  descriptor: Descriptor;
  /** org.opencontainers.image.ref.name, when set. */
  refName?: string;
  /** io.containerd.image.name, when set. */
  imageName?: string;
}

/** True when `reader` holds an OCI layout (the oci-layout marker file). */
export async function isOciLayout(reader: ArchiveReader): Promise<boolean> {
  return (await reader.stat('oci-layout')) !== undefined && (await reader.stat('index.json')) !== undefined;
}

export class OciLayout {
  private constructor(
    readonly reader: ArchiveReader,
    private readonly images: OciLayoutImage[],
  ) {}

  /** Checks oci-layout and reads index.json (the reader stays the caller's to close). */
  static async open(reader: ArchiveReader): Promise<OciLayout> {
    const marker = await requireFile(reader, 'oci-layout', 'OCI layout marker');
    const m = parseArchiveJson(reader, await readSmallFile(reader, marker, ArchiveLimits.layoutMarkerBytes, 'OCI layout marker'), 'oci-layout') as { imageLayoutVersion?: unknown } | null;
    const version = typeof m === 'object' && m !== null ? m.imageLayoutVersion : undefined;
    if (version !== LAYOUT_VERSION) {
      throw new S2nError('EARCHIVE', `read archive ${reader.description}: OCI layout version ${JSON.stringify(version)} is not supported (only ${LAYOUT_VERSION})`, {
        hint: 'the layout was written by a tool we do not know; export it again with skopeo or docker',
        context: { archive: reader.description, imageLayoutVersion: version },
      });
    }
    const indexFile = await requireFile(reader, 'index.json', 'OCI index');
    const index = validateIndex(parseArchiveJson(reader, await readSmallFile(reader, indexFile, ArchiveLimits.manifestBytes, 'OCI index'), 'index.json'), {
      what: `index.json of ${reader.description}`,
    });
    if (index.manifests.length === 0) throw archiveError(reader.description, 'index.json lists no images', { entry: 'index.json' });
    const images = index.manifests.map((d, i): OciLayoutImage => {
      const refName = d.annotations?.[Annotation.refName];
      const imageName = d.annotations?.[CONTAINERD_IMAGE_NAME];
      return { index: i, descriptor: d, ...(refName ? { refName } : {}), ...(imageName ? { imageName } : {}) };
    });
    return new OciLayout(reader, images);
  }

  get description(): string {
    return this.reader.description;
  }

  listImages(): OciLayoutImage[] {
    return this.images.map((i) => ({ ...i }));
  }

  /**
   * The entry for `selector`: its position in index.json, or a name equal to
   * its ref.name or containerd image name; without a selector, the only entry.
   */
  source(selector?: number | string): OciLayoutSource {
    let image: OciLayoutImage | undefined;
    if (selector === undefined) {
      if (this.images.length === 1) image = this.images[0];
      else throw this.notFound('(no name given)', `the layout holds ${this.images.length} images; name one`);
    } else if (typeof selector === 'number') image = this.images[selector];
    else image = this.images.find((i) => i.refName === selector || i.imageName === selector);
    if (!image) throw this.notFound(String(selector));
    return new OciLayoutSource(this.reader, image);
  }

  private notFound(selector: string, why = 'not there'): S2nError {
    const names = this.images.map((i) => i.imageName ?? i.refName).filter((n): n is string => n !== undefined);
    return new S2nError('EIMAGE', `find image ${selector} in OCI layout ${this.description}: ${why}`, {
      hint: names.length > 0 ? `the layout holds: ${names.join(', ')}` : `the layout holds ${this.images.length} unnamed image(s)`,
      context: { archive: this.description, selector, names },
    });
  }
}

/** One index.json entry of an OCI layout. */
export class OciLayoutSource implements ImageSource {
  readonly description: string;

  constructor(
    private readonly reader: ArchiveReader,
    readonly image: OciLayoutImage,
  ) {
    const name = image.imageName ?? image.refName;
    this.description = `oci:${reader.description}${name !== undefined ? `:${name}` : `#${image.index}`}`;
  }

  /** The entry without the layout's own annotations (names are the store's business, as after a pull). */
  async resolve(opts?: FetchOptions): Promise<Descriptor> {
    opts?.signal?.throwIfAborted();
    const d = this.image.descriptor;
    return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.platform ? { platform: d.platform } : {}) };
  }

  async fetch(desc: Descriptor, opts?: FetchOptions): Promise<Readable> {
    opts?.signal?.throwIfAborted();
    const f = await this.reader.stat(blobEntryName(desc.digest));
    if (!f) throw blobMissingError(this.reader, desc.digest);
    return this.reader.open(f);
  }

  /** True when the reader already hashed this blob (streamed input) and it matches. */
  async contentMatches(desc: Descriptor): Promise<boolean> {
    const f = await this.reader.stat(blobEntryName(desc.digest));
    return f?.digest === desc.digest && f.size === desc.size;
  }
}
