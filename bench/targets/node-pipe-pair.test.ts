/** The (D) Node pipe pair, for real: bytes flow through both sides over mTLS, and a caller without a certificate is refused. */
import { connect as tlsConnect } from 'node:tls';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { BODY } from '../lib/upstream-server.js';
import { startNodePipePair } from './node-pipe-pair.js';
import { pairUnderTest } from './pair-under-test.js';

describe('Node pipe pair', () => {
  const pair = pairUnderTest((o) => startNodePipePair(o.children, { upstreamPort: o.upstreamPort, ports: o.ports, identities: o.identities }));

  it('carries keep-alive requests through both sides to the upstream', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await request(pair.target.url);
      expect(res.statusCode).toBe(200);
      expect(Buffer.from(await res.body.arrayBuffer())).toEqual(BODY);
    }
  });

  it('refuses a TLS caller without a client certificate on the inbound side', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: pair.inboundPort, rejectUnauthorized: false }, () => {
        socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      });
      socket.on('data', () => resolve('answered'));
      socket.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
      socket.on('close', () => resolve('closed'));
    });
    expect(outcome).not.toBe('answered');
  });
});
