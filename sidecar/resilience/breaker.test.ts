import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { circuitBreakerPolicy } from '../../common/config/schema.js';
import { Admission, CircuitBreaker, type CircuitState, type Verdict } from './breaker.js';

/** opossum counts outcomes in promise callbacks; let them run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

function make(overrides: object = {}) {
  const changes: CircuitState[] = [];
  let rejects = 0;
  const breaker = new CircuitBreaker(
    circuitBreakerPolicy.parse({ volumeThreshold: 10, errorThresholdPercentage: 50, resetTimeout: '5s', ...overrides }),
    { onStateChange: (s) => changes.push(s), onReject: () => rejects++ },
  );
  return { breaker, changes, rejects: () => rejects };
}

async function run(breaker: CircuitBreaker, outcomes: Array<boolean | 'neutral'>): Promise<void> {
  for (const ok of outcomes) {
    const admission = breaker.tryAcquire();
    expect(admission).not.toBe(Admission.Refused);
    breaker.release(admission, verdict(ok));
    await settle();
  }
}

/** A half-open circuit admits one trial and no other; the trial fails and the circuit opens again. */
async function failOneTrial(breaker: CircuitBreaker): Promise<void> {
  expect(breaker.state).toBe('half-open');
  expect(breaker.tryAcquire()).toBe(Admission.Trial);
  expect(breaker.tryAcquire()).toBe(Admission.Refused);
  breaker.release(Admission.Trial, 'failure');
  await settle();
  expect(breaker.state).toBe('open');
}

function verdict(ok: boolean | 'neutral'): Verdict {
  return ok === 'neutral' ? ok : ok ? 'success' : 'failure';
}

describe('CircuitBreaker', () => {
  const breakers: CircuitBreaker[] = [];
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    for (const b of breakers.splice(0)) b.close();
    vi.useRealTimers();
  });
  const track = <T extends { breaker: CircuitBreaker }>(x: T): T => (breakers.push(x.breaker), x);

  it('stays closed below the volume threshold however bad the error rate', async () => {
    const { breaker, changes } = track(make());
    await run(breaker, Array(9).fill(false));
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual([]);
  });

  it('opens once volume is reached and the error rate exceeds the threshold, then rejects', async () => {
    const { breaker, changes, rejects } = track(make());
    await run(breaker, [true, true, true, true, false, false, false, false, false]);
    expect(breaker.state).toBe('closed'); // 9 requests: below volume
    await run(breaker, [false]); // 10 requests, 6 failures: 60% > 50%
    expect(breaker.state).toBe('open');
    expect(changes).toEqual(['open']);
    expect(breaker.tryAcquire()).toBe(Admission.Refused);
    expect(breaker.tryAcquire()).toBe(Admission.Refused);
    expect(rejects()).toBe(2);
  });

  it('does not open at or under the threshold', async () => {
    const { breaker } = track(make());
    await run(breaker, [...Array(10).fill(true), ...Array(10).fill(false)]);
    expect(breaker.state).toBe('closed'); // exactly 50%
  });

  it('half-opens after resetTimeout, lets exactly one trial through, and closes on its success', async () => {
    const { breaker, changes } = track(make());
    await run(breaker, Array(10).fill(false));
    expect(breaker.state).toBe('open');
    vi.advanceTimersByTime(4999);
    expect(breaker.state).toBe('open');
    vi.advanceTimersByTime(1);
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryAcquire()).toBe(Admission.Trial);
    expect(breaker.tryAcquire()).toBe(Admission.Refused); // the trial is in flight
    breaker.release(Admission.Trial, 'success');
    await settle();
    expect(breaker.state).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
    expect(breaker.tryAcquire()).toBe(Admission.Attempt);
    breaker.release(Admission.Attempt, 'success');
  });

  it('reopens when the half-open trial fails, and half-opens again after another resetTimeout', async () => {
    const { breaker, changes } = track(make());
    await run(breaker, Array(10).fill(false));
    vi.advanceTimersByTime(5000);
    await run(breaker, [false]);
    expect(breaker.state).toBe('open');
    vi.advanceTimersByTime(5000);
    expect(breaker.state).toBe('half-open');
    expect(changes).toEqual(['open', 'half-open', 'open', 'half-open']);
  });

  it('forgets failures that left the rolling window', async () => {
    const { breaker } = track(make({ rollingWindow: '10s' }));
    await run(breaker, Array(9).fill(false));
    vi.advanceTimersByTime(11_000);
    await run(breaker, Array(9).fill(true));
    await run(breaker, [false]);
    expect(breaker.state).toBe('closed'); // 1 failure of 10 in the window
  });

  it('caps in-flight attempts at maxConcurrent without counting that as failure', async () => {
    const { breaker, rejects } = track(make({ maxConcurrent: 3, volumeThreshold: 0, errorThresholdPercentage: 0 }));
    const admitted = Admission.Attempt;
    expect([breaker.tryAcquire(), breaker.tryAcquire(), breaker.tryAcquire(), breaker.tryAcquire()]).toEqual([admitted, admitted, admitted, Admission.Refused]);
    expect(breaker.active).toBe(3);
    expect(rejects()).toBe(1);
    breaker.release(admitted, 'success');
    await settle();
    expect(breaker.state).toBe('closed');
    expect(breaker.tryAcquire()).toBe(admitted);
    for (let i = 0; i < 3; i++) breaker.release(admitted, 'success');
    await settle();
    expect(breaker.active).toBe(0);
  });

  it('counts a neutral release (the caller went away) for nothing: it frees the slot without diluting the failures', async () => {
    const { breaker } = track(make({ volumeThreshold: 4, maxConcurrent: 1 }));
    // Were they successes, 4 failures of 10 would stay under 50 %; they are 4 of 4.
    await run(breaker, ['neutral', 'neutral', 'neutral', false, 'neutral', 'neutral', 'neutral', false, false]);
    expect(breaker.state).toBe('closed'); // 3 outcomes: below volume
    expect(breaker.active).toBe(0); // each neutral release freed its slot (maxConcurrent 1)
    await run(breaker, [false]);
    expect(breaker.state).toBe('open');
  });

  it('keeps a half-open circuit half-open when its trial is released neutral, and admits the next trial', async () => {
    const { breaker, changes } = track(make());
    await run(breaker, Array(10).fill(false));
    vi.advanceTimersByTime(5000);
    expect(breaker.tryAcquire()).toBe(Admission.Trial);
    breaker.release(Admission.Trial, 'neutral');
    await settle();
    await failOneTrial(breaker);
    expect(changes).toEqual(['open', 'half-open', 'open']);
  });

  it('lets an outcome released while half-open decide, and still holds the next trial until the one in flight is released', async () => {
    const { breaker } = track(make({ volumeThreshold: 2 }));
    const early = breaker.tryAcquire(); // admitted while closed, released once half-open
    await run(breaker, [false, false]);
    vi.advanceTimersByTime(5000);
    expect(breaker.tryAcquire()).toBe(Admission.Trial);
    breaker.release(early, 'success');
    await settle();
    expect(breaker.state).toBe('closed');
    breaker.release(Admission.Trial, 'neutral');
    expect(breaker.active).toBe(0);
  });

  it('judges a closed circuit on what happened since it closed, not counting attempts released while it was open', async () => {
    const { breaker, changes } = track(make());
    const late = Array.from({ length: 20 }, () => breaker.tryAcquire()); // in flight when the circuit opens
    await run(breaker, Array(10).fill(false));
    expect(breaker.state).toBe('open');
    for (const admission of late) breaker.release(admission, 'failure');
    await settle();
    expect(breaker.active).toBe(0);
    vi.advanceTimersByTime(5000);
    await run(breaker, [true]); // the trial closes it
    expect(breaker.state).toBe('closed');
    // The 10 failures that opened it are behind the close: 9 new ones are below the volume
    // threshold, and the 10th (10 of 10) opens it again.
    await run(breaker, Array(9).fill(false));
    expect(breaker.state).toBe('closed');
    await run(breaker, [false]);
    expect(breaker.state).toBe('open');
    expect(changes).toEqual(['open', 'half-open', 'closed', 'open']);
  });

  it('gives the place of a trial still out resetTimeout after it went out to the next request, and counts the late one at its end: a slow success closes the circuit', async () => {
    const { breaker, changes } = track(make({ volumeThreshold: 2 }));
    await run(breaker, [false, false]);
    vi.advanceTimersByTime(5000);
    const slow = { admission: breaker.tryAcquire() };
    expect(slow.admission).toBe(Admission.Trial);
    breaker.startTrial(slow);
    vi.advanceTimersByTime(4999);
    expect(breaker.tryAcquire()).toBe(Admission.Refused); // the trial holds its place until its bound
    vi.advanceTimersByTime(1);
    await settle();
    expect(breaker.state).toBe('half-open'); // nothing judged at the bound
    expect(slow.admission).toBe(Admission.Attempt);
    const next = { admission: breaker.tryAcquire() };
    expect(next.admission).toBe(Admission.Trial);
    breaker.startTrial(next);
    expect(breaker.tryAcquire()).toBe(Admission.Refused); // still one trial at a time
    // The slow endpoint answers well after all: the circuit closes.
    breaker.release(slow.admission, 'success');
    await settle();
    expect(breaker.state).toBe('closed');
    breaker.release(next.admission, 'success');
    await settle();
    expect(breaker.active).toBe(0);
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  it('reopens the circuit when a trial past its bound fails at its end, and leaves a trial answered or released before its bound as it was', async () => {
    const { breaker, changes } = track(make({ volumeThreshold: 2 }));
    await run(breaker, [false, false]);
    vi.advanceTimersByTime(5000);
    const late = { admission: breaker.tryAcquire() };
    breaker.startTrial(late);
    vi.advanceTimersByTime(5000);
    breaker.release(late.admission, 'failure');
    await settle();
    expect(breaker.state).toBe('open');
    expect(changes).toEqual(['open', 'half-open', 'open']);

    vi.advanceTimersByTime(5000);
    const released = { admission: breaker.tryAcquire() };
    expect(released.admission).toBe(Admission.Trial);
    breaker.startTrial(released);
    breaker.release(released.admission, 'success');
    await settle();
    expect(breaker.state).toBe('closed');
    vi.advanceTimersByTime(5000);
    expect(released.admission).toBe(Admission.Trial); // its bound was off
    expect(breaker.active).toBe(0);
  });

  it('closes the circuit when the half-open trial answers well, and does not count the trial again at its end', async () => {
    const { breaker, changes } = track(make({ volumeThreshold: 2 }));
    await run(breaker, [false, false]);
    vi.advanceTimersByTime(5000);
    expect(breaker.tryAcquire()).toBe(Admission.Trial);
    const answered = breaker.trialAnswered();
    expect(answered).toBe(Admission.Answered);
    await settle();
    expect(breaker.state).toBe('closed');
    expect(breaker.tryAcquire()).toBe(Admission.Attempt); // others go through while the trial's body streams
    expect(breaker.active).toBe(2);
    breaker.release(Admission.Attempt, 'success');
    // Its body then breaks: counted again, that failure and the next would be 2 of 3 tries.
    breaker.release(answered, 'failure');
    expect(breaker.active).toBe(0);
    await run(breaker, [false]);
    expect(breaker.state).toBe('closed'); // 1 failure of 2
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  describe('reconfigured by a reload that changes its policy', () => {
    const policy = (overrides: object) => circuitBreakerPolicy.parse({ volumeThreshold: 10, resetTimeout: '5s', ...overrides });

    it('counts the attempts in flight against the new maxConcurrent until they end, and in active', async () => {
      const { breaker } = track(make({ maxConcurrent: 10 }));
      for (let i = 0; i < 4; i++) expect(breaker.tryAcquire()).toBe(Admission.Attempt);
      breaker.reconfigure(policy({ maxConcurrent: 5 }));
      expect(breaker.active).toBe(4);
      expect(breaker.tryAcquire()).toBe(Admission.Attempt);
      expect(breaker.tryAcquire()).toBe(Admission.Refused);
      // An attempt admitted before the change ends: a place frees under the new limit.
      breaker.release(Admission.Attempt, 'failure');
      expect(breaker.active).toBe(4);
      expect(breaker.tryAcquire()).toBe(Admission.Attempt);
      for (let i = 0; i < 3; i++) breaker.release(Admission.Attempt, 'success');
      expect(breaker.active).toBe(2);
    });

    it('ten thousand reloads later admits and counts as before them', () => {
      const { breaker } = track(make({ maxConcurrent: 3 }));
      expect(breaker.tryAcquire()).toBe(Admission.Attempt);
      for (let i = 0; i < 10_000; i++) breaker.reconfigure(policy({ maxConcurrent: 3 }));
      expect(breaker.active).toBe(1);
      expect([breaker.tryAcquire(), breaker.tryAcquire(), breaker.tryAcquire()]).toEqual([Admission.Attempt, Admission.Attempt, Admission.Refused]);
      breaker.release(Admission.Attempt, 'success');
      expect(breaker.active).toBe(2);
      expect(breaker.toJSON()).toMatchObject({ state: 'closed', active: 2 });
    });

    it('stays open through a change (its reset timer started again with the new resetTimeout), then half-opens and closes as any', async () => {
      const { breaker, changes } = track(make({ volumeThreshold: 2 }));
      await run(breaker, [false, false]);
      expect(breaker.state).toBe('open');
      vi.advanceTimersByTime(4000);
      const before = changes.length;
      breaker.reconfigure(policy({ volumeThreshold: 2, resetTimeout: '2s' }));
      expect(breaker.state).toBe('open');
      expect(breaker.tryAcquire()).toBe(Admission.Refused);
      vi.advanceTimersByTime(1999);
      expect(breaker.state).toBe('open');
      vi.advanceTimersByTime(1);
      expect(breaker.state).toBe('half-open');
      expect(breaker.tryAcquire()).toBe(Admission.Trial);
      breaker.release(Admission.Trial, 'success');
      await settle();
      expect(breaker.state).toBe('closed');
      expect(changes.slice(before)).toEqual(['half-open', 'closed']);
    });

    it('stays half-open through a change, admitting one trial', async () => {
      const { breaker } = track(make({ volumeThreshold: 2 }));
      await run(breaker, [false, false]);
      vi.advanceTimersByTime(5000);
      expect(breaker.state).toBe('half-open');
      breaker.reconfigure(policy({ volumeThreshold: 3 }));
      await failOneTrial(breaker);
    });

    it('keeps a trial still out through a change: no second trial, and its outcome decides', async () => {
      const { breaker } = track(make({ volumeThreshold: 2 }));
      await run(breaker, [false, false]);
      vi.advanceTimersByTime(5000);
      expect(breaker.tryAcquire()).toBe(Admission.Trial);
      breaker.reconfigure(policy({ volumeThreshold: 3 }));
      expect(breaker.tryAcquire()).toBe(Admission.Refused);
      breaker.release(Admission.Trial, 'success');
      await settle();
      expect(breaker.state).toBe('closed');
    });
  });
});
