/**
 * Image locations as `copy` names them, the way skopeo does:
 *
 *   docker://REF                  a registry (REF as for pull)
 *   docker-archive:FILE[:REF]     a `docker save` tar; REF picks an image (read) or names it (write)
 *   oci-archive:FILE[:REF]        an OCI layout in a tar; REF is an index.json ref name
 *   oci:DIR[:REF]                 an OCI layout directory
 *   store:REF, or a bare REF      the local store (what pull and load write to)
 *
 * FILE and DIR end at the first `:` after the transport (as in skopeo), so
 * they cannot contain one. openSource() turns a location into an ImageSource;
 * sinks/open.ts does the same for destinations.
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { S2nError } from '../errors.js';
import { parseReference, type Reference } from '../oci/reference.js';
import { storeNameOf } from '../store/find.js';
import { privateName } from '../store/fsutil.js';
import type { ContentStore } from '../store/store.js';
import { openArchive } from './archive/open.js';
import type { ArchiveReader } from './archive/reader.js';
import { DockerArchive, isDockerArchive } from './docker-archive.js';
import { OciLayout, isOciLayout } from './oci-layout.js';
import { openRegistrySource, type RegistrySourceOptions } from './registry/source.js';
import type { ImageSource } from './source.js';

export type Transport = 'docker' | 'docker-archive' | 'oci-archive' | 'oci' | 'store';

export interface ImageLocation {
  transport: Transport;
  /** As given, for messages. */
  input: string;
  /** FILE or DIR (archives, layouts). */
  path?: string;
  /** The REF part: a reference (docker, store) or an archive's image name; absent when not given. */
  ref?: string;
  /** docker:// only. */
  reference?: Reference;
}

const HINT = 'give docker://REF, docker-archive:FILE[:REF], oci-archive:FILE[:REF], oci:DIR[:REF], or store:REF (or a bare REF) for the local store';

function badLocation(input: string, why: string): S2nError {
  return new S2nError('EUSAGE', `use image location ${JSON.stringify(input)}: ${why}`, { hint: HINT, context: { location: input } });
}

/** Parses a location (see the file comment); EUSAGE for an unknown transport or a missing path. */
export function parseLocation(input: string): ImageLocation {
  if (input.startsWith('docker://')) {
    const rest = input.slice('docker://'.length);
    let reference: Reference;
    try {
      reference = parseReference(rest);
    } catch (e) {
      throw new S2nError('EUSAGE', `use image location ${JSON.stringify(input)}: ${e instanceof Error ? e.message : String(e)}`, { hint: HINT, cause: e, context: { location: input } });
    }
    return { transport: 'docker', input, ref: rest, reference };
  }
  const m = /^([a-z][a-z0-9-]*):(.*)$/.exec(input);
  const transport = m?.[1];
  if (transport === 'docker-archive' || transport === 'oci-archive' || transport === 'oci') {
    const rest = m?.[2] ?? '';
    const at = rest.indexOf(':');
    const path = at < 0 ? rest : rest.slice(0, at);
    const ref = at < 0 ? undefined : rest.slice(at + 1);
    if (path === '') throw badLocation(input, `${transport}: needs a path`);
    return { transport, input, path, ...(ref ? { ref } : {}) };
  }
  if (transport === 'store') {
    const ref = m?.[2] ?? '';
    if (ref === '') throw badLocation(input, 'store: needs an image name');
    return { transport: 'store', input, ref };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(input)) throw badLocation(input, `unknown transport ${input.slice(0, input.indexOf(':'))}://`);
  if (transport !== undefined && /^(dir|docker-daemon|containers-storage|oci-layout|sif|tarball)$/.test(transport)) {
    throw badLocation(input, `the ${transport}: transport is not supported`);
  }
  try {
    parseReference(input);
  } catch (e) {
    throw new S2nError('EUSAGE', `use image location ${JSON.stringify(input)}: not a transport:path nor an image reference`, { hint: HINT, cause: e, context: { location: input } });
  }
  return { transport: 'store', input, ref: input };
}

export interface OpenSourceOptions {
  /** The local store, for store: locations (opened on demand). */
  store?: () => Promise<ContentStore>;
  registry?: RegistrySourceOptions;
  /** Where compressed or streamed archives are spooled; default the system temp dir. */
  spoolDir?: string;
}

/** An ImageSource for `location` (a string is parsed first). The caller closes it. */
export async function openSource(location: string | ImageLocation, o: OpenSourceOptions = {}): Promise<ImageSource> {
  const loc = typeof location === 'string' ? parseLocation(location) : location;
  switch (loc.transport) {
    case 'docker':
      return openRegistrySource(loc.reference as Reference, o.registry ?? {});
    case 'store': {
      if (!o.store) throw badLocation(loc.input, 'no local store here');
      const store = await o.store();
      return store.source(await storeNameOf(store, loc.ref as string));
    }
    default: {
      const reader = await openArchive(loc.path as string, { spoolPath: () => join(o.spoolDir ?? tmpdir(), `s2n-oci-spool-${privateName()}`) });
      try {
        return withClose(await archiveSource(reader, loc), reader);
      } catch (e) {
        await reader.close();
        throw e;
      }
    }
  }
}

async function archiveSource(reader: ArchiveReader, loc: ImageLocation): Promise<ImageSource> {
  if (loc.transport === 'docker-archive') {
    if (!(await isDockerArchive(reader))) throw badLocation(loc.input, `${loc.path ?? ''} is not a docker save archive (no manifest.json)`);
    const archive = await DockerArchive.open(reader);
    if (loc.ref === undefined && archive.listImages().length > 1) {
      throw new S2nError('EUSAGE', `read archive ${reader.description}: it holds ${archive.listImages().length} images; name one as docker-archive:FILE:REF`, {
        hint: `it holds: ${archive.listImages().flatMap((i) => i.repoTags).join(', ')}`,
      });
    }
    return archive.source(loc.ref ?? 0);
  }
  if (!(await isOciLayout(reader))) throw badLocation(loc.input, `${loc.path ?? ''} is not an OCI layout (no oci-layout and index.json)`);
  return (await OciLayout.open(reader)).source(loc.ref);
}

function withClose(src: ImageSource, reader: ArchiveReader): ImageSource {
  return {
    description: src.description,
    resolve: (opts) => src.resolve(opts),
    fetch: (desc, opts) => src.fetch(desc, opts),
    close: async () => {
      await src.close?.();
      await reader.close();
    },
  };
}
