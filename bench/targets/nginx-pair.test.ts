/** The nginx reference pair, for real: generated configs load, mTLS is enforced, requests flow. */
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../test/support/ports.js';
import { waitUntil } from '../../test/support/wait.js';
import { ChildProcesses } from '../lib/children.js';
import { makeBenchIdentities } from '../lib/identities.js';
import { findOnPath } from '../lib/tools.js';
import { BODY, startUpstream } from '../lib/upstream-server.js';
import { startNginxPair } from './nginx-pair.js';
import type { Target } from './target.js';

const nginxPath = findOnPath('nginx');

describe.skipIf(!nginxPath)('nginx pair', () => {
  const children = new ChildProcesses();
  const dir = mkdtempSync(join(tmpdir(), 'skein-bench-test-'));
  const identities = makeBenchIdentities(dir, 'bench-client', 'bench-upstream');
  let target: Target;
  let inboundPort: number;

  beforeAll(async () => {
    const upstream = await startUpstream(children);
    const ports = (await freePorts(2)) as [number, number];
    inboundPort = ports[1];
    target = startNginxPair(children, { nginxPath: nginxPath!, dir, upstreamPort: upstream.port, ports, identities });
    await waitUntil(
      async () => {
        const dead = target.children.find((c) => c.hasExited);
        if (dead) throw new Error(`${dead.name} exited: ${dead.output()}`);
        return (await request(target.url)).statusCode === 200;
      },
      { what: 'the nginx pair to answer' },
    );
  });

  afterAll(async () => {
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('carries a request through both proxies to the upstream', async () => {
    const res = await request(target.url);
    expect(res.statusCode).toBe(200);
    expect(Buffer.from(await res.body.arrayBuffer())).toEqual(BODY);
    expect(BODY.length).toBe(100);
  });

  it('refuses a caller without a client certificate on the inbound side', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: inboundPort, path: '/', rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
  });

  it('measures one worker per side, not the masters', () => {
    const [outbound, inbound] = target.proxies.map((p) => p.pids());
    expect(outbound).toHaveLength(1);
    expect(inbound).toHaveLength(1);
    const masters = target.children.map((c) => c.pid);
    expect(masters).not.toContain(outbound![0]);
    expect(masters).not.toContain(inbound![0]);
  });
});
