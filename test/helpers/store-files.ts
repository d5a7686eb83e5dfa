/** Looks into a store directory the way the e2e tests check it: plain file listings, no product code. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The hex part of a `sha256:` digest, as the blob file is named. */
export const hex = (d: string): string => d.slice('sha256:'.length);

/** Entries of `<root>/<sub>`, or none when it does not exist yet. */
export function storeFiles(root: string, sub: string): string[] {
  const d = join(root, sub);
  return existsSync(d) ? readdirSync(d) : [];
}

export const blobFiles = (root: string): string[] => storeFiles(root, 'blobs/sha256');
export const ingestFiles = (root: string): string[] => storeFiles(root, 'ingest');
