import { describe, expect, it } from 'vitest';
import { retryPolicy } from '../../common/config/schema.js';
import { SidecarMetrics } from '../telemetry/metrics.js';
import { RetryBudget } from './retry-budget.js';
import { RetryPlan, STOP } from './retry-plan.js';

const metricsText = async (m: SidecarMetrics) => m.text();

describe('RetryPlan', () => {
  it('retries up to `attempts` times with bounded backoff, counting each retry', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const plan = new RetryPlan(retryPolicy.parse({ attempts: 2, backoff: { base: '10ms', max: '15ms' } }), 'catalog', new RetryBudget({ ratio: 1, minPerSecond: 100 }), metrics, () => 1);
    expect(plan.next(0, 'response', 503, -1, true, true)).toBe(10);
    expect(plan.next(1, 'connect-failure', 0, -1, true, false)).toBe(15);
    expect(plan.next(2, 'response', 503, -1, true, true)).toBe(STOP);
    const text = await metricsText(metrics);
    expect(text).toContain('skein_retries_total{destination="catalog",reason="gateway-error"} 1');
    expect(text).toContain('skein_retries_total{destination="catalog",reason="connect-failure"} 1');
  });

  it('stops on outcomes the policy does not retry and for POST that reached the upstream', () => {
    const plan = new RetryPlan(retryPolicy.parse({}), 'catalog', new RetryBudget({ ratio: 1, minPerSecond: 100 }), undefined);
    expect(plan.next(0, 'response', 500, -1, true, true)).toBe(STOP);
    expect(plan.next(0, 'response', 503, -1, false, true)).toBe(STOP);
    expect(plan.next(0, 'connect-failure', 0, -1, false, false)).toBeGreaterThanOrEqual(0);
  });

  it('stops and counts exhaustion when the budget is spent', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const budget = new RetryBudget({ ratio: 0, minPerSecond: 1 });
    const plan = new RetryPlan(retryPolicy.parse({}), 'catalog', budget, metrics);
    expect(plan.next(0, 'reset', 0, -1, true, true)).not.toBe(STOP);
    expect(plan.next(0, 'reset', 0, -1, true, true)).toBe(STOP);
    expect(await metricsText(metrics)).toContain('skein_retry_budget_exhausted_total{destination="catalog"} 1');
  });
});
