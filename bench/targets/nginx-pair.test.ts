/** The nginx reference pair, for real: generated configs load, mTLS is enforced, requests flow. */
import { request as httpsRequest } from 'node:https';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { findOnPath } from '../lib/tools.js';
import { BODY } from '../lib/upstream-server.js';
import { startNginxPair } from './nginx-pair.js';
import { pairUnderTest } from './pair-under-test.js';

const nginxPath = findOnPath('nginx');

describe.skipIf(!nginxPath)('nginx pair', () => {
  const pair = pairUnderTest((o) => startNginxPair(o.children, { nginxPath: nginxPath!, dir: o.dir, upstreamPort: o.upstreamPort, ports: o.ports, identities: o.identities }));

  it('carries a request through both proxies to the upstream', async () => {
    const res = await request(pair.target.url);
    expect(res.statusCode).toBe(200);
    expect(Buffer.from(await res.body.arrayBuffer())).toEqual(BODY);
    expect(BODY.length).toBe(100);
  });

  it('refuses a caller without a client certificate on the inbound side', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: pair.inboundPort, path: '/', rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
  });

  it('measures one worker per side, not the masters', () => {
    const [outbound, inbound] = pair.target.proxies.map((p) => p.pids());
    expect(outbound).toHaveLength(1);
    expect(inbound).toHaveLength(1);
    const masters = pair.target.children.map((c) => c.pid);
    expect(masters).not.toContain(outbound![0]);
    expect(masters).not.toContain(inbound![0]);
  });
});
