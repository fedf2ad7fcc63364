import { describe, expect, it } from 'vitest';
import { BlockingQuery, nextIndex, type BlockingRequest } from './blocking-query.js';

describe('nextIndex (Consul blocking-query index rules)', () => {
  it('follows increases, resets to 0 when the index goes backwards, and never keeps 0', () => {
    expect(nextIndex('', '42')).toBe('42');
    expect(nextIndex('42', '43')).toBe('43');
    expect(nextIndex('42', '7')).toBe('0');
    expect(nextIndex('', '0')).toBe('1');
    expect(nextIndex('5', undefined)).toBe('0');
    expect(nextIndex('18446744073709551614', '18446744073709551615')).toBe('18446744073709551615');
  });
});

describe('BlockingQuery', () => {
  it('passes each answer whose index moved, sends the index back, and does not spin on an unchanged index', async () => {
    const sent: string[] = [];
    const answers: number[] = [];
    const started: number[] = [];
    const indexes = ['10', '11', '11', '11', '12'];
    let call = 0;
    const query = new BlockingQuery<number>({
      kind: 'index',
      minIntervalMs: 100,
      request: async (req: BlockingRequest) => {
        sent.push(req.cursor);
        started.push(Date.now());
        const i = call++;
        if (i >= indexes.length) return parked(req);
        return { data: i, cursor: indexes[i] };
      },
      onAnswer: (n) => answers.push(n),
      onError: () => {},
    });
    await waitFor(() => call > indexes.length);
    await query.stop();
    expect(sent.slice(0, 5)).toEqual(['', '10', '11', '11', '11']);
    expect(answers).toEqual([0, 1, 4]);
    // Two unchanged answers: each next request waited for the minimum interval.
    expect(started[3]! - started[2]!).toBeGreaterThanOrEqual(90);
    expect(started[4]! - started[3]!).toBeGreaterThanOrEqual(90);
  });

  it('an answer without an index (a proxy dropped X-Consul-Index) is passed on and paced, not asked again at once', async () => {
    const sent: string[] = [];
    const started: number[] = [];
    const answers: number[] = [];
    let call = 0;
    const query = new BlockingQuery<number>({
      kind: 'index',
      minIntervalMs: 100,
      request: async (req) => {
        sent.push(req.cursor);
        started.push(Date.now());
        const i = call++;
        if (i === 0) return { data: 0, cursor: '7' };
        if (i < 4) return { data: i, cursor: undefined };
        return parked(req);
      },
      onAnswer: (n) => answers.push(n),
      onError: () => {},
    });
    await waitFor(() => call > 4);
    await query.stop();
    expect(sent).toEqual(['', '7', '7', '7', '7']);
    expect(answers).toEqual([0, 1, 2, 3]);
    for (const i of [2, 3, 4]) expect(started[i]! - started[i - 1]!).toBeGreaterThanOrEqual(90);
  });

  it('backs off with jitter on errors and asks without an index after one', async () => {
    const sent: string[] = [];
    const delays: number[] = [];
    let call = 0;
    const query = new BlockingQuery<number>({
      kind: 'index',
      backoffBaseMs: 10,
      backoffMaxMs: 40,
      random: () => 1,
      request: async (req) => {
        sent.push(req.cursor);
        const i = call++;
        if (i === 0) return { data: 0, cursor: '50' };
        if (i <= 4) throw new Error('connection refused');
        if (i === 5) return { data: 5, cursor: '3' };
        return parked(req);
      },
      onAnswer: () => {},
      onError: (_err, _attempt, delay) => delays.push(delay),
    });
    await waitFor(() => call > 6);
    await query.stop();
    expect(delays).toEqual([10, 20, 40, 40]);
    expect(sent).toEqual(['', '50', '', '', '', '', '3']);
  });

  it('an answer its consumer throws on is an error of that request: backed off, asked again without an index, the loop goes on', async () => {
    const sent: string[] = [];
    const errors: string[] = [];
    const taken: number[] = [];
    let call = 0;
    const query = new BlockingQuery<number>({
      kind: 'index',
      backoffBaseMs: 10,
      random: () => 1,
      request: async (req) => {
        sent.push(req.cursor);
        const i = call++;
        if (i < 3) return { data: i, cursor: String(10 + i) };
        return parked(req);
      },
      onAnswer: (n) => {
        if (n === 1) throw new TypeError('entries.map is not a function');
        taken.push(n);
      },
      onError: (err) => errors.push((err as Error).message),
    });
    await waitFor(() => call > 3);
    await query.stop();
    expect(errors).toEqual(['entries.map is not a function']);
    expect(taken).toEqual([0, 2]);
    expect(sent).toEqual(['', '10', '', '12']);
  });
});

/** A request Consul holds until the query is stopped (papi aborts on the ctx's 'cancel'). */
function parked(req: BlockingRequest): Promise<never> {
  return new Promise((_, reject) => req.ctx.once('cancel', () => reject(new Error('aborted'))));
}

async function waitFor(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
