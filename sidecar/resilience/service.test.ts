import { describe, expect, it } from 'vitest';
import { servicePolicy } from '../../common/config/schema.js';
import { SidecarMetrics } from '../telemetry/metrics.js';
import { Resilience } from './service.js';

describe('Resilience', () => {
  it('keeps a service state across snapshots unless its policy changed', () => {
    const r = new Resilience();
    const policy = servicePolicy.parse({ endpoints: [{ address: '127.0.0.1', port: 1 }] });
    r.apply({ catalog: policy, users: servicePolicy.parse({}) });
    const catalog = r.get('catalog');
    const users = r.get('users');
    r.apply({ catalog: servicePolicy.parse({ endpoints: [{ address: '127.0.0.1', port: 2 }] }), users: servicePolicy.parse({ timeout: '1s' }) });
    expect(r.get('catalog')).toBe(catalog); // only endpoints changed
    expect(r.get('users')).not.toBe(users);
    expect(r.get('unknown').policy.timeout).toBe(3000); // defaults for services the snapshot does not name
    r.close();
  });

  it('wires breaker state and rejections, and outlier ejections, to the metrics', async () => {
    const metrics = new SidecarMetrics({ processMetrics: false });
    const r = new Resilience(metrics);
    r.apply({ catalog: servicePolicy.parse({ circuitBreaker: { volumeThreshold: 1, errorThresholdPercentage: 0 }, outlierDetection: { consecutiveErrors: 1 } }) });
    const s = r.get('catalog');
    const breaker = s.breaker('v1');
    expect(s.breaker('v1')).toBe(breaker);
    breaker.tryAcquire();
    breaker.release(false);
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(breaker.tryAcquire()).toBe(false);
    s.outlier.setEndpoints(['a:1', 'b:1']);
    s.outlier.record('a:1', true);
    const text = await metrics.text();
    expect(text).toContain('skein_circuit_state{destination="catalog",subset="v1"} 1');
    expect(text).toContain('skein_circuit_rejections_total{destination="catalog",subset="v1"} 1');
    expect(text).toContain('skein_outlier_ejections_total{destination="catalog"} 1');
    expect(r.toJSON().catalog?.breakers.v1?.state).toBe('open');
    r.close();
  });
});
