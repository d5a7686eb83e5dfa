import { isDigest } from './oci/digest.js';
import { parseReference, type Reference } from './oci/reference.js';

export { findImage, readImage, type StoredImage } from './store/find.js';

/** Repository and tag columns for a stored name, docker-style. */
export function splitName(name: string): { repository: string; tag: string; reference: Reference | undefined } {
  // An image loaded without a name is stored under its digest (see load.ts): docker's <none>:<none>.
  if (isDigest(name)) return { repository: '<none>', tag: '<none>', reference: undefined };
  try {
    const r = parseReference(name);
    return { repository: `${r.registry}/${r.repository}`, tag: r.tag ?? '<none>', reference: r };
  } catch {
    return { repository: name, tag: '<none>', reference: undefined };
  }
}

