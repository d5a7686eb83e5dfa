/**
 * Content digests (`algorithm:hex`) as image-spec defines them. We accept the
 * two registered algorithms Node can compute, sha256 and sha512, and only in
 * their canonical form (lowercase hex of the exact length): a digest is an
 * identity, so two spellings of one hash must never both be accepted.
 */
import { S2nError } from '../errors.js';
import { nodeCrypto } from '../lazy-crypto.js';
import type { Digest } from './types.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

const HINT = 'digests look like sha256:<64 lowercase hex characters>';

function isAlgorithm(a: string): a is DigestAlgorithm {
  return a === 'sha256' || a === 'sha512';
}

/** Why `s` is not a digest we accept, or undefined when it is one. */
function digestProblem(s: string): string | undefined {
  const colon = s.indexOf(':');
  if (colon <= 0) return 'expected ALGORITHM:HEX';
  const algorithm = s.slice(0, colon);
  const hex = s.slice(colon + 1);
  if (!isAlgorithm(algorithm)) return `unsupported algorithm "${algorithm}" (sha256 and sha512 are supported)`;
  const want = HEX_LENGTH[algorithm];
  if (!/^[0-9a-f]*$/.test(hex)) return `${algorithm} digest must be lowercase hex`;
  if (hex.length !== want) return `${algorithm} digest must have ${want} hex characters, got ${hex.length}`;
  return undefined;
}

/** Split and check a digest; throws EDIGEST naming what is wrong. */
export function parseDigest(s: string): ParsedDigest {
  const problem = digestProblem(s);
  if (problem !== undefined) {
    throw new S2nError('EDIGEST', `parse digest "${s}": ${problem}`, { hint: HINT, context: { digest: s } });
  }
  const colon = s.indexOf(':');
  return { algorithm: s.slice(0, colon) as DigestAlgorithm, hex: s.slice(colon + 1) };
}

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && digestProblem(s) === undefined;
}

export function sha256Digest(data: Buffer | string): Digest {
  return `sha256:${nodeCrypto().createHash('sha256').update(data).digest('hex')}`;
}

export function digestHex(d: Digest): string {
  return parseDigest(d).hex;
}

/** `sha256:0123456789ab…`: enough to tell digests apart in a message. */
export function shortDigest(d: string): string {
  const colon = d.indexOf(':');
  if (colon < 0 || d.length - colon - 1 <= 12) return d;
  return `${d.slice(0, colon + 13)}…`;
}
