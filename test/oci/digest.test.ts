import { describe, it, expect } from 'vitest';
import { S2nError } from '../../src/errors.js';
import { digestHex, isDigest, parseDigest, sha256Digest, shortDigest } from '../../src/oci/digest.js';

const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const EMPTY_SHA512 =
  'sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e';

describe('parseDigest', () => {
  it('splits sha256 and sha512 digests', () => {
    expect(parseDigest(EMPTY_SHA256)).toEqual({ algorithm: 'sha256', hex: EMPTY_SHA256.slice(7) });
    expect(parseDigest(EMPTY_SHA512)).toEqual({ algorithm: 'sha512', hex: EMPTY_SHA512.slice(7) });
  });

  it.each([
    ['', 'expected ALGORITHM:HEX'],
    ['e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'expected ALGORITHM:HEX'],
    [':abc', 'expected ALGORITHM:HEX'],
    ['md5:d41d8cd98f00b204e9800998ecf8427e', 'unsupported algorithm "md5"'],
    ['SHA256:' + 'a'.repeat(64), 'unsupported algorithm'],
    ['sha384:' + 'a'.repeat(96), 'unsupported algorithm "sha384"'],
    ['sha256:' + 'A'.repeat(64), 'must be lowercase hex'],
    ['sha256:' + 'g'.repeat(64), 'must be lowercase hex'],
    ['sha256:' + 'a'.repeat(63), 'must have 64 hex characters, got 63'],
    ['sha256:' + 'a'.repeat(65), 'must have 64 hex characters, got 65'],
    ['sha256:' + 'a'.repeat(128), 'must have 64 hex characters'],
    ['sha512:' + 'a'.repeat(64), 'must have 128 hex characters, got 64'],
    ['sha256:', 'must have 64 hex characters, got 0'],
    [' sha256:' + 'a'.repeat(64), 'unsupported algorithm'],
  ])('refuses %j (%s)', (input, reason) => {
    let err: unknown;
    try {
      parseDigest(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(S2nError);
    const e = err as S2nError;
    expect(e.code).toBe('EDIGEST');
    expect(e.message).toContain(reason);
    expect(e.message).toMatch(/^parse digest /);
    expect(e.hint).toMatch(/sha256:/);
    expect(e.context['digest']).toBe(input);
  });
});

describe('isDigest', () => {
  it('accepts canonical digests only', () => {
    expect(isDigest(EMPTY_SHA256)).toBe(true);
    expect(isDigest(EMPTY_SHA512)).toBe(true);
    expect(isDigest(EMPTY_SHA256.toUpperCase())).toBe(false);
    expect(isDigest('sha256:abc')).toBe(false);
    expect(isDigest(42)).toBe(false);
    expect(isDigest(undefined)).toBe(false);
  });
});

describe('sha256Digest / digestHex / shortDigest', () => {
  it('hashes buffers and strings alike', () => {
    expect(sha256Digest('')).toBe(EMPTY_SHA256);
    expect(sha256Digest(Buffer.alloc(0))).toBe(EMPTY_SHA256);
    expect(sha256Digest('abc')).toBe('sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Digest(Buffer.from('abc'))).toBe(sha256Digest('abc'));
  });

  it('returns the hex part, validating', () => {
    expect(digestHex(EMPTY_SHA256)).toBe(EMPTY_SHA256.slice(7));
    expect(() => digestHex('sha256:zz')).toThrow(S2nError);
  });

  it('shortens for messages', () => {
    expect(shortDigest(EMPTY_SHA256)).toBe('sha256:e3b0c44298fc…');
    expect(shortDigest('sha256:abc')).toBe('sha256:abc');
    expect(shortDigest('nonsense')).toBe('nonsense');
  });
});
