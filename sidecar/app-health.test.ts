import { createServer, type ServerResponse, type Server } from 'node:http';
import { once } from 'node:events';
import { pino } from 'pino';
import { Pool } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { AppHealth } from './app-health.js';

let server: Server | undefined;
let pool: Pool | undefined;
let health: AppHealth | undefined;
afterEach(async () => {
  health?.stop();
  await pool?.destroy(); // a check is still held open by the app
  server?.closeAllConnections();
  if (server) await new Promise((r) => server!.close(r));
});

/** An app whose health checks wait for the test to answer them, one at a time. */
async function heldApp(): Promise<{ port: number; answer(status: number): Promise<void> }> {
  const waiting: ServerResponse[] = [];
  let received = 0;
  server = createServer((_req, res) => {
    received++;
    waiting.push(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const checksCame = async (n: number): Promise<void> => {
    const deadline = Date.now() + 5_000;
    while (received < n) {
      if (Date.now() > deadline) throw new Error(`health check ${n} never came`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  let answered = 0;
  return {
    port: (server.address() as { port: number }).port,
    // Answers the check in flight, then waits for the next one: the sidecar has counted the answer by then.
    async answer(status) {
      await checksCame(answered + 1);
      waiting.shift()!.writeHead(status).end();
      answered++;
      await checksCame(answered + 1);
    },
  };
}

function start(port: number): AppHealth {
  pool = new Pool(`http://127.0.0.1:${port}`);
  health = new AppHealth({ port, path: '/health', protocol: 'http', pollMs: 5 }, pool, pino({ level: 'silent' }));
  health.start();
  return health;
}

describe('AppHealth', () => {
  it('stays healthy through two failed checks in a row and turns unhealthy at the third, then back at the next success', async () => {
    const app = await heldApp();
    const h = start(app.port);
    const verdicts: string[] = [];
    for (const status of [200, 500, 503, 200, 500, 500, 500, 200]) {
      await app.answer(status);
      verdicts.push(h.readinessBlocker() === undefined ? 'ok' : 'unhealthy');
    }
    expect(verdicts).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'unhealthy', 'ok']);
    expect(h.trafficBlocker()).toBeUndefined();
  });

  it('is unhealthy from the first failed check until the app has answered once', async () => {
    const app = await heldApp();
    const h = start(app.port);
    await app.answer(500);
    expect(h.readinessBlocker()).toMatch(/answered 500/);
    expect(h.trafficBlocker()).toMatch(/not healthy yet/);
    await app.answer(200);
    expect(h.readinessBlocker()).toBeUndefined();
  });
});
