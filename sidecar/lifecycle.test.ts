import { describe, expect, it } from 'vitest';
import { Lifecycle, type InFlightRequest } from './lifecycle.js';

/** A request that answers the drain's end unless its answer began, and ends itself when it does. */
function request(lifecycle: Lifecycle, begun = false): InFlightRequest & { told: string[] } {
  const r = {
    told: [] as string[],
    inFlightPrev: null,
    inFlightNext: null,
    cutOff(why: string): boolean {
      r.told.push(why);
      if (begun) return false;
      lifecycle.requestEnded(r);
      return true;
    },
  };
  lifecycle.requestStarted(r);
  return r;
}

describe('Lifecycle in-flight list', () => {
  it('counts requests started and ended in any order, and an end twice once', () => {
    const lifecycle = new Lifecycle();
    const [a, b, c] = [request(lifecycle), request(lifecycle), request(lifecycle)];
    expect(lifecycle.inFlight).toBe(3);
    lifecycle.requestEnded(b);
    lifecycle.requestEnded(b);
    expect(lifecycle.inFlight).toBe(2);
    lifecycle.requestEnded(c);
    lifecycle.requestEnded(a);
    lifecycle.requestEnded(c);
    expect(lifecycle.inFlight).toBe(0);
    const d = request(lifecycle);
    expect(lifecycle.inFlight).toBe(1);
    lifecycle.requestEnded(d);
    expect(lifecycle.inFlight).toBe(0);
  });

  it('cutOff tells every request in flight, counts those that answered, and keeps those whose answer began', () => {
    const lifecycle = new Lifecycle();
    const requests = [request(lifecycle), request(lifecycle, true), request(lifecycle), request(lifecycle)];
    lifecycle.requestEnded(requests[2]!);
    expect(lifecycle.cutOff('shutting down')).toBe(2);
    expect(requests.map((r) => r.told.length)).toEqual([1, 1, 0, 1]);
    expect(lifecycle.inFlight).toBe(1);
    lifecycle.requestEnded(requests[1]!);
    expect(lifecycle.inFlight).toBe(0);
  });

  it('drain resolves true when the last request ends, false at its timeout', async () => {
    const lifecycle = new Lifecycle();
    const a = request(lifecycle);
    const idle = lifecycle.drain(60_000);
    expect(lifecycle.draining).toBe(true);
    lifecycle.requestEnded(a);
    await expect(idle).resolves.toBe(true);
    request(lifecycle);
    await expect(lifecycle.drain(1)).resolves.toBe(false);
  });
});

describe('Lifecycle.settle', () => {
  it('resolves true once the count is down to its limit, false at its timeout, and forgets a waiter that timed out', async () => {
    const lifecycle = new Lifecycle();
    const [a, b] = [request(lifecycle), request(lifecycle)];
    await expect(lifecycle.settle(2, 1)).resolves.toBe(true);
    const one = lifecycle.settle(1, 60_000);
    const none = lifecycle.settle(0, 60_000);
    let noneDone = false;
    void none.then(() => (noneDone = true));
    lifecycle.requestEnded(a);
    await expect(one).resolves.toBe(true);
    expect(noneDone).toBe(false);
    await expect(lifecycle.settle(0, 1)).resolves.toBe(false);
    lifecycle.requestEnded(b);
    await expect(none).resolves.toBe(true);
  });
});
