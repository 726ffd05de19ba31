import { expect } from 'vitest';
import { RollbackError } from '../../src/errors.js';

/** Awaits a promise that must reject with a RollbackError, and returns that error. */
export async function rejection(promise: Promise<unknown>): Promise<RollbackError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RollbackError);
  return error as RollbackError;
}
