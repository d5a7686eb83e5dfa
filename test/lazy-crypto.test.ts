import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nodeCrypto, randomBytes } from '../src/lazy-crypto.js';

describe('lazy-crypto', () => {
  it('randomBytes gives n fresh bytes', () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    expect(a.length).toBe(32);
    expect(a.equals(b)).toBe(false);
    expect(randomBytes(0).length).toBe(0);
  });

  it('nodeCrypto is node:crypto, loaded once', () => {
    expect(nodeCrypto().createHash).toBe(createHash);
    expect(nodeCrypto()).toBe(nodeCrypto());
  });
});
