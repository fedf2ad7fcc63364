import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { connectConsul, isLoopbackUrl } from '../../common/consul/client.js';
import type { Logger } from '../../common/log.js';
import { startScriptedConsulAgent } from '../../test/support/scripted-consul-agent.js';
import { waitUntil } from '../../test/support/wait.js';
import { checkIdOf, ConsulRegistration, registrationBody, type InstanceRegistration } from './consul-registration.js';

const instance: InstanceRegistration = {
  id: 'catalog-v2-1a2b3c4d', service: 'catalog', version: 'v2', protocol: 'grpc', address: '10.0.0.7', port: 15443, checkUrl: 'http://127.0.0.1:15000/ready',
};

describe('registrationBody', () => {
  it('registers the inbound port with version tag and meta, and an HTTP check on /ready every 2 s', () => {
    expect(registrationBody(instance)).toEqual({
      id: 'catalog-v2-1a2b3c4d',
      name: 'catalog',
      address: '10.0.0.7',
      port: 15443,
      tags: ['v2'],
      meta: { version: 'v2', protocol: 'grpc', 'skein-instance': 'catalog-v2-1a2b3c4d' },
      check: { checkid: checkIdOf(instance.id), name: 'skein sidecar /ready of catalog-v2-1a2b3c4d', http: 'http://127.0.0.1:15000/ready', interval: '2s', timeout: '1s', deregistercriticalserviceafter: '1m' },
    });
  });

  it('uses a TTL check when the agent cannot reach the loopback admin port', () => {
    const check = registrationBody({ ...instance, ttlReadiness: () => [] }).check as Record<string, unknown>;
    expect(check.ttl).toBe('6s');
    expect(check.http).toBeUndefined();
  });
});

describe('isLoopbackUrl', () => {
  it('tells a local agent from a remote one', () => {
    expect(isLoopbackUrl('http://127.0.0.1:8500')).toBe(true);
    expect(isLoopbackUrl('http://localhost:8500')).toBe(true);
    expect(isLoopbackUrl('https://[::1]:8501')).toBe(true);
    expect(isLoopbackUrl('http://consul:8500')).toBe(false);
    expect(isLoopbackUrl('http://10.0.0.2:8500')).toBe(false);
  });
});

describe('ConsulRegistration against a scripted agent', () => {
  it('registers before it first asks the agent about the instance, so a start leaves no 404 in the agent\'s log', async () => {
    const agent = await startScriptedConsulAgent();
    const consul = connectConsul(agent.url, {});
    const registration = new ConsulRegistration(consul, instance, pino({ level: 'silent' }));
    try {
      const read = `GET /v1/agent/service/${instance.id}`;
      await waitUntil(() => agent.requests.includes(read), { what: 'the keeper reading its registration' });
      expect(agent.requests.indexOf('PUT /v1/agent/service/register')).toBeGreaterThanOrEqual(0);
      expect(agent.requests.indexOf('PUT /v1/agent/service/register')).toBeLessThan(agent.requests.indexOf(read));
    } finally {
      await registration.deregister(1_000);
      consul.close();
      await agent.close();
    }
  });
});

/** A logger whose lines the test reads. */
function capturingLogger(): { lines: string[]; logger: Logger } {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  }));
  return { lines, logger };
}

describe('ConsulRegistration against an agent that stops answering', () => {
  it('a registration left hanging does not hold up deregistration, so shutdown goes on to drain', async () => {
    // An agent that does not know the instance (404), then holds every PUT unanswered.
    const agent = await startScriptedConsulAgent({ holdPut: () => true });
    const consul = connectConsul(agent.url, {});
    const { lines, logger } = capturingLogger();
    const registration = new ConsulRegistration(consul, instance, logger);
    try {
      await waitUntil(() => agent.puts.some((p) => p.path === '/v1/agent/service/register'), { what: 'the registration PUT' });
      const started = Date.now();
      await registration.deregister(300);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(lines.join('')).toMatch(/deregistering from Consul failed: .*no answer within 300 ms/);
    } finally {
      consul.close();
      await agent.close();
    }
  });
});

describe('ConsulRegistration in TTL mode against a hung agent (a server that never answers)', () => {
  it('keeps one bounded TTL update in flight, says so once, and updates again once the agent answers', async () => {
    let hung = true;
    const agent = await startScriptedConsulAgent({ hung: () => hung });
    const consul = connectConsul(agent.url, {});
    const { lines, logger } = capturingLogger();
    // Ticks every 50 ms and updates cut off after 200 ms: several ticks fall inside each update.
    const registration = new ConsulRegistration(consul, { ...instance, ttlReadiness: () => [] }, logger, { ttlEveryMs: 50, ttlTimeoutMs: 200 });
    const ttlUpdates = (): number => agent.requests.filter((r) => r.startsWith('PUT /v1/agent/check/pass/')).length;
    try {
      await waitUntil(() => ttlUpdates() >= 4, { what: 'four TTL updates sent to the hung agent', timeoutMs: 20_000 });
      // One connection for the keeper's registration (still waiting on its own timeout), one for the TTL update.
      expect(agent.connections.peak).toBeLessThanOrEqual(2);
      expect(lines.filter((l) => l.includes('cannot update the TTL check')).length).toBe(1);
      expect(lines.join('')).toMatch(/cannot update the TTL check in Consul: .*request timed out \(200ms\)/);

      hung = false;
      await waitUntil(() => lines.some((l) => l.includes('TTL check updates reach Consul again')), { what: 'TTL updates resuming' });
      expect(agent.connections.open).toBeLessThanOrEqual(2);
    } finally {
      await registration.deregister(300);
      consul.close();
      await agent.close();
    }
  });
});

describe('ConsulRegistration against an agent that keeps losing the instance', () => {
  it('registers again no sooner than 1 s after the previous registration, not in a tight loop', async () => {
    const agent = await startScriptedConsulAgent({ forgets: () => true });
    const consul = connectConsul(agent.url, {});
    const registration = new ConsulRegistration(consul, instance, pino({ level: 'silent' }));
    const registeredAt: number[] = [];
    const registrations = (): number => agent.puts.filter((p) => p.path === '/v1/agent/service/register').length;
    try {
      const started = Date.now();
      while (Date.now() - started < 2_500) {
        if (registrations() > registeredAt.length) registeredAt.push(Date.now());
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(registrations()).toBeGreaterThanOrEqual(2);
      expect(registrations()).toBeLessThanOrEqual(3);
      for (let i = 1; i < registeredAt.length; i++) expect(registeredAt[i]! - registeredAt[i - 1]!).toBeGreaterThanOrEqual(900);
    } finally {
      await registration.deregister(1_000);
      consul.close();
      await agent.close();
    }
  });
});
