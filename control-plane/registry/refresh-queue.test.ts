/**
 * RefreshQueue with reads the test ends by hand: never more than `concurrency` in flight, a
 * key marked during its read read again after it, a failed read retried, `onRecovered`
 * before the answer that ends the failures.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/support/wait.js';
import { RefreshQueue } from './refresh-queue.js';

interface Pending {
  readonly key: string;
  resolve(value: string): void;
  reject(err: Error): void;
}

function recordingQueue(concurrency: number) {
  const inFlight: Pending[] = [];
  const events: string[] = [];
  let most = 0;
  const queue = new RefreshQueue<string>({
    concurrency,
    backoffBaseMs: 1,
    read: (key, ctx) =>
      new Promise<string>((resolve, reject) => {
        const pending: Pending = {
          key,
          resolve: (v) => (inFlight.splice(inFlight.indexOf(pending), 1), resolve(v)),
          reject: (e) => (inFlight.splice(inFlight.indexOf(pending), 1), reject(e)),
        };
        ctx.once('cancel', () => pending.reject(new Error('cancelled')));
        inFlight.push(pending);
        most = Math.max(most, inFlight.length);
      }),
    onRead: (key, data) => events.push(`read ${key}=${data}`),
    onError: (key, err, attempt) => events.push(`error ${key} ${attempt} ${(err as Error).message}`),
    onRecovered: (key) => events.push(`recovered ${key}`),
  });
  return { queue, inFlight, events, most: () => most };
}

describe('RefreshQueue', () => {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => stop?.());

  it('reads at most `concurrency` keys at once, each marked key once, and every one in the end', async () => {
    const q = recordingQueue(2);
    stop = () => q.queue.stop();
    for (const key of ['a', 'b', 'c', 'd', 'e', 'c']) q.queue.mark(key);
    expect(q.inFlight.map((p) => p.key)).toEqual(['a', 'b']);
    for (let done = 1; done <= 5; done++) {
      q.inFlight[0]!.resolve('1');
      await waitUntil(() => q.events.length === done && q.inFlight.length === Math.min(2, 5 - done), { what: `read ${done} done, the next started` });
    }
    expect(q.most()).toBe(2);
    expect(q.events.sort()).toEqual(['read a=1', 'read b=1', 'read c=1', 'read d=1', 'read e=1']);
  });

  it('a key marked while its read is in flight is read again after it', async () => {
    const q = recordingQueue(4);
    stop = () => q.queue.stop();
    q.queue.mark('a');
    q.queue.mark('a');
    expect(q.inFlight).toHaveLength(1);
    q.inFlight[0]!.resolve('old');
    await waitUntil(() => q.inFlight.length === 1, { what: 'the second read of a' });
    q.inFlight[0]!.resolve('new');
    await waitUntil(() => q.events.length === 2, { what: 'both answers' });
    expect(q.events).toEqual(['read a=old', 'read a=new']);
  });

  it('a failed read is tried again, and onRecovered comes before the answer that ends the failures', async () => {
    const q = recordingQueue(4);
    stop = () => q.queue.stop();
    q.queue.mark('a');
    q.inFlight[0]!.reject(new Error('429'));
    await waitUntil(() => q.inFlight.length === 1, { what: 'the retry' });
    q.inFlight[0]!.resolve('ok');
    await waitUntil(() => q.events.length === 3, { what: 'the answer' });
    expect(q.events).toEqual(['error a 1 429', 'recovered a', 'read a=ok']);
  });

  it('a forgotten key is not read, and stop cancels what is in flight', async () => {
    const q = recordingQueue(1);
    q.queue.mark('a');
    q.queue.mark('b');
    q.queue.forget('b');
    q.inFlight[0]!.resolve('1');
    await waitUntil(() => q.events.length === 1, { what: 'a read' });
    expect(q.inFlight).toHaveLength(0);
    q.queue.mark('c');
    expect(q.inFlight).toHaveLength(1);
    await q.queue.stop();
    expect(q.inFlight).toHaveLength(0);
    expect(q.events).toEqual(['read a=1']);
  });
});
