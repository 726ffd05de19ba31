import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../test/helpers/guard-fakes.js';
import { clockTimeout } from './clock.js';

describe('clockTimeout', () => {
  it('aborts with a TimeoutError once the time has passed on the clock, not before', async () => {
    const clock = new FakeClock(0);
    const { signal } = clockTimeout(clock, 1000);
    await clock.advance(999);
    expect(signal.aborted).toBe(false);
    await clock.advance(1);
    expect(signal.aborted).toBe(true);
    expect((signal.reason as DOMException).name).toBe('TimeoutError');
  });

  it('never aborts once cleared (the work ended first)', async () => {
    const clock = new FakeClock(0);
    const deadline = clockTimeout(clock, 1000);
    deadline.clear();
    await clock.advance(5000);
    expect(deadline.signal.aborted).toBe(false);
  });
});
