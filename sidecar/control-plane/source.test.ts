import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { makeCa } from '../../test/support/certs.js';
import { freePort, tempDir, waitUntil } from '../../test/support/index.js';
import { ControlPlaneSource, URGENT_BACKOFF_MAX_MS } from './source.js';

/** A logger whose reconnect warnings land in `waits` (their retryInMs). */
function recordingLogger() {
  const waits: number[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const line = JSON.parse(chunk.toString()) as { msg: string; retryInMs?: number };
      if (line.msg === 'control plane stream down; reconnecting') waits.push(line.retryInMs!);
      done();
    },
  });
  return { waits, logger: pino({ level: 'warn' }, sink) };
}

describe('control-plane stream reconnects', () => {
  it('waits at most a second between tries while urgent (a certificate is due), however long the backoff', async () => {
    const caFile = join(tempDir(), 'ca.crt');
    writeFileSync(caFile, makeCa().certPem);
    const { waits, logger } = recordingLogger();
    const source = new ControlPlaneSource({
      // Nothing listens there: every try fails at once.
      address: `127.0.0.1:${await freePort()}`,
      caFile,
      logger,
      announce: { service: 'orders', instanceId: 'orders-1', version: 'v1', address: '127.0.0.1', inboundPort: 15443, adminPort: 0, protocol: 'http', labels: {} },
      backoff: { baseMs: 60_000, maxMs: 60_000 },
      urgent: () => true,
    });
    try {
      await source.start(() => undefined);
      await waitUntil(() => waits.length >= 3, { what: 'three reconnect tries', timeoutMs: 10_000 });
      expect(Math.max(...waits)).toBeLessThanOrEqual(URGENT_BACKOFF_MAX_MS);
    } finally {
      await source.close();
    }
  });
});
