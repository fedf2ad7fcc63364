import { describe, expect, it } from 'vitest';
import { consulHealth, receivesTraffic, type HealthEntry } from './consul.js';

const entry = (...statuses: string[]): HealthEntry => ({ Service: { ID: 'web-1', Port: 8001 }, Checks: statuses.map((Status) => ({ Status })) });

describe('consulHealth', () => {
  it('is the worst of the checks, node checks included, as Consul aggregates them', () => {
    expect(consulHealth(entry())).toBe('passing');
    expect(consulHealth(entry('passing', 'passing'))).toBe('passing');
    expect(consulHealth(entry('passing', 'warning'))).toBe('warning');
    expect(consulHealth(entry('warning', 'critical', 'warning'))).toBe('critical');
  });

  it('takes a status it does not know for critical, never for something to route to', () => {
    expect(consulHealth(entry('passing', 'maintenance'))).toBe('critical');
  });
});

describe('receivesTraffic', () => {
  it('is passing or warning by default, passing alone with onlyPassing (a service-resolver\'s OnlyPassing)', () => {
    expect([receivesTraffic('passing'), receivesTraffic('warning'), receivesTraffic('critical')]).toEqual([true, true, false]);
    expect([receivesTraffic('passing', true), receivesTraffic('warning', true), receivesTraffic('critical', true)]).toEqual([true, false, false]);
  });
});
