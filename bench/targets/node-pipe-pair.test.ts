/** The (D) Node pipe pair, for real: bytes flow through both sides over mTLS, and a caller without a certificate is refused. */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../test/support/ports.js';
import { ChildProcesses } from '../lib/children.js';
import { makeBenchIdentities } from '../lib/identities.js';
import { BODY, startUpstream } from '../lib/upstream-server.js';
import { startNodePipePair } from './node-pipe-pair.js';
import { waitForTarget, type Target } from './target.js';

describe('Node pipe pair', () => {
  const children = new ChildProcesses();
  const dir = mkdtempSync(join(tmpdir(), 'skein-bench-test-'));
  const identities = makeBenchIdentities(dir, 'bench-client', 'bench-upstream');
  let target: Target;
  let inboundPort: number;

  beforeAll(async () => {
    const upstream = await startUpstream(children);
    const ports = (await freePorts(2)) as [number, number];
    inboundPort = ports[1];
    target = startNodePipePair(children, { upstreamPort: upstream.port, ports, identities });
    await waitForTarget(target);
  });

  afterAll(async () => {
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('carries keep-alive requests through both sides to the upstream', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await request(target.url);
      expect(res.statusCode).toBe(200);
      expect(Buffer.from(await res.body.arrayBuffer())).toEqual(BODY);
    }
  });

  it('refuses a TLS caller without a client certificate on the inbound side', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: inboundPort, rejectUnauthorized: false }, () => {
        socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      });
      socket.on('data', () => resolve('answered'));
      socket.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
      socket.on('close', () => resolve('closed'));
    });
    expect(outcome).not.toBe('answered');
  });
});
