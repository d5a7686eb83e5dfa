import { expect } from 'vitest';
import { S2nError } from '../../src/errors.js';

/** The S2nError `f` throws (fails the test when it returns or throws something else). */
export function caught(f: () => unknown): S2nError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(S2nError);
    return e as S2nError;
  }
  throw new Error('expected an S2nError, nothing was thrown');
}
