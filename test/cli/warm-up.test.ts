import { describe, expect, it } from 'vitest';
import { warmUp } from '../../src/cli/warm-up.js';

describe('warmUp, the training run for the code cache', () => {
  it('parses a run line and generates root and rootless configs without touching the host', async () => {
    const before = process.exitCode;
    await expect(warmUp()).resolves.toBeUndefined();
    expect(process.exitCode).toBe(before);
  });
});
