import { describe, expect, it } from 'vitest';
import { combineWrk, parseWrkOutput } from './wrk.js';

const REPORT = `Running 5s test @ http://127.0.0.1:40123/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   790.12us  301.55us  12.31ms   93.12%
    Req/Sec    20.43k     1.02k   21.80k    80.00%
  101652 requests in 5.00s, 24.14MB read
Requests/sec:  20327.41
Transfer/sec:      4.83MB
`;

describe('parseWrkOutput', () => {
  it('reads requests and rate from a clean report', () => {
    expect(parseWrkOutput(REPORT)).toEqual({ requests: 101652, rps: 20327.41, errors: 0 });
  });

  it('counts non-2xx responses and socket errors as errors', () => {
    const text = REPORT.replace(
      'Requests/sec',
      '  Socket errors: connect 1, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 4\nRequests/sec',
    );
    expect(parseWrkOutput(text).errors).toBe(10);
  });

  it('refuses output that is not a wrk report', () => {
    expect(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(/could not read wrk/);
  });
});

describe('combineWrk', () => {
  it('is total requests over total time, not the mean of rates', () => {
    // 10k requests in 1 s and 10k in 2 s: 20k in 3 s.
    const combined = combineWrk([
      { requests: 10_000, rps: 10_000, errors: 0 },
      { requests: 10_000, rps: 5_000, errors: 1 },
    ]);
    expect(combined.rps).toBeCloseTo(6666.67, 1);
    expect(combined).toMatchObject({ requests: 20_000, errors: 1 });
  });
});
