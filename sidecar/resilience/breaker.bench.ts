/** `npx vitest bench --run sidecar/resilience/breaker.bench.ts`: cost of one admitted attempt (1 op = 1000 attempts). */
import { bench, describe } from 'vitest';
import { circuitBreakerPolicy } from '../../common/config/schema.js';
import { CircuitBreaker } from './breaker.js';

const BATCH = 1000;
const breaker = new CircuitBreaker(circuitBreakerPolicy.parse({ errorThresholdPercentage: 100 }));

describe('CircuitBreaker x1000', () => {
  bench('tryAcquire + release(success), outcomes counted by opossum', async () => {
    for (let i = 0; i < BATCH; i++) {
      breaker.release(breaker.tryAcquire(), 'success');
    }
    await new Promise((r) => setImmediate(r));
  });
  bench('tryAcquire + release(failure), outcomes counted by opossum', async () => {
    for (let i = 0; i < BATCH; i++) {
      breaker.release(breaker.tryAcquire(), i % 10 !== 0 ? 'success' : 'failure');
    }
    await new Promise((r) => setImmediate(r));
  });
  bench('baseline: setImmediate alone', async () => {
    await new Promise((r) => setImmediate(r));
  });
});
