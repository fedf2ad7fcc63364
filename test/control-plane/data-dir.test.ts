/**
 * One control plane per data dir: a second real process on the same dir refuses to start
 * (exit 1, naming the dir and the holder's pid) and leaves the first one's state alone; a
 * holder killed with SIGKILL does not block the next start.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts, Processes, waitUntil } from '../support/index.js';
import { startControlPlane } from './harness.js';

const procs = new Processes();
afterAll(() => procs.killAll());

describe('data dir ownership', () => {
  it('refuses a second control plane on a data dir in use, and not after the owner crashed', async () => {
    const first = await startControlPlane(procs);
    await first.api.put('/api/v1/services/catalog/policy', { timeout: '2s' });

    const [httpPort, grpcPort] = await freePorts(2);
    const second = procs.skein('second control-plane', [
      'control-plane', '--data-dir', first.dataDir, '--http-port', String(httpPort), '--grpc-port', String(grpcPort), '--grpc-host', '127.0.0.1',
    ], { SKEIN_ADMIN_TOKEN: first.adminToken });
    await waitUntil(() => second.hasExited, { what: 'the second control plane to exit', timeoutMs: 20_000 });
    expect((await second.exited).code).toBe(1);
    expect(second.output()).toContain(`the data dir ${first.dataDir} is in use by another control plane (pid ${first.child.process.pid})`);

    // The first one still owns its state: earlier and later writes are all there.
    await first.api.put('/api/v1/services/orders/policy', { timeout: '3s' });
    expect((await first.api.get('/api/v1/services/catalog/policy')).body).toEqual({ timeout: '2s' });

    first.child.kill('SIGKILL');
    await first.child.exited;
    const third = await startControlPlane(procs, { dataDir: first.dataDir });
    expect((await third.api.get('/api/v1/services/catalog/policy')).body).toEqual({ timeout: '2s' });
    expect((await third.api.get('/api/v1/services/orders/policy')).body).toEqual({ timeout: '3s' });
  }, 60_000);
});
