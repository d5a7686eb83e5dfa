import { describe, expect, it } from 'vitest';
import { S2nError } from '../../../src/errors.js';
import { backoffDelay, isTransientStatus, markTransient, parseRetryAfter, retryPolicy, withRetry } from '../../../src/sources/registry/retry.js';

describe('retry policy', () => {
  it('knows which statuses are transient', () => {
    expect([408, 429, 500, 502, 503, 504].every(isTransientStatus)).toBe(true);
    expect([400, 401, 403, 404, 501].some(isTransientStatus)).toBe(false);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Sun, 31 Dec 2023 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('backs off exponentially with jitter and a ceiling', () => {
    const p = { baseDelayMs: 200, maxDelayMs: 1000, random: () => 1 };
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, p))).toEqual([200, 400, 800, 1000, 1000]);
    expect(backoffDelay(1, { ...p, random: () => 0 })).toBe(100);
  });

  it('retries marked errors only, up to the attempt budget, honouring Retry-After with a cap', async () => {
    const sleeps: number[] = [];
    const p = retryPolicy({ attempts: 3, sleep: async (ms) => void sleeps.push(ms), random: () => 0.5, maxRetryAfterMs: 60_000 });
    let n = 0;
    await expect(
      withRetry(async () => {
        n++;
        throw markTransient(new S2nError('ETOOMANY', 'x'), n === 1 ? 120_000 : undefined);
      }, p),
    ).rejects.toMatchObject({ code: 'ETOOMANY' });
    expect(n).toBe(3);
    expect(sleeps).toEqual([60_000, 300]);

    n = 0;
    await expect(
      withRetry(async () => {
        n++;
        throw new S2nError('ENOTFOUND', 'x');
      }, p),
    ).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(n).toBe(1);
  });
});
