/**
 * `--max-request-headers` (SPEC §8: oversized headers, 64 KiB by default): a head past the
 * limit is `431 bad-request` naming it, on HTTP/1.1, HTTP/2 (h2c) and a peer's mux stream
 * (the inbound of a real mTLS pair); a raised limit lets a big head through both hops, over the
 * mux or over HTTP/2, where one field of over 64 KiB is refused before it is sent (nghttp2 would
 * fail the peer's whole session on it).
 */
import { connect as connectH2 } from 'node:http2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { echoHandler, freePorts, makeCa, makeLeaf, Processes, startUpstream, tempDir, writeIdentity, writeTempConfig, type SpawnedSidecar, type TestUpstream } from '../support/index.js';
import { get, h2Answer, rawExchange, testAgent } from './http.js';

const BIG = 100 * 1024;

describe('request head limit', () => {
  const procs = new Processes();
  const agent = testAgent();
  let app: TestUpstream;
  /**
   * Outbound with `--max-request-headers 128KiB`; calls `catalog` (inbound 128KiB too) over the
   * mux, `catalog-h2` (128KiB, a gRPC service) over HTTP/2, and `guarded` (inbound at the default).
   */
  let web: SpawnedSidecar;
  /** `guarded` itself, every limit at the default: its outbound is the default's too. */
  let guarded: SpawnedSidecar;
  /** `--max-request-headers 4KiB`, no identity: its calls to `app` go to the app as plain HTTP/1.1. */
  let small: SpawnedSidecar;
  const sidecars = (): SpawnedSidecar[] => [web, guarded, small];
  /** Requests for `path` the app got (the sidecars' health checks reach it too). */
  const reached = (path: string): number => app.requests.filter((r) => r.url === path).length;

  beforeAll(async () => {
    // node:http takes 16 KiB of head by default: this app takes what the sidecars let through.
    app = await startUpstream(echoHandler('app'), { maxHeaderSize: 256 * 1024 });
    const ca = makeCa();
    const dir = tempDir();
    const [catalogIn, catalogH2In, guardedIn] = (await freePorts(3)) as [number, number, number];
    const at = (port: number) => ({ endpoints: [{ address: '127.0.0.1', port, labels: { version: 'v1' } }] });
    const config = writeTempConfig({ services: { catalog: at(catalogIn), 'catalog-h2': { protocol: 'grpc', retries: { attempts: 0 }, ...at(catalogH2In) }, guarded: at(guardedIn), app: at(app.port) }, intentions: { defaultAction: 'allow' } }, dir);
    const id = (name: string) => writeIdentity(dir, name, makeLeaf(ca, name));
    const raised = ['--max-request-headers', '128KiB'];
    await procs.sidecar({ service: 'catalog', appPort: app.port, config, inboundPort: catalogIn, identity: id('catalog'), extraArgs: raised });
    // Its app speaks HTTP/1.1: only the hop between the sidecars is HTTP/2.
    await procs.sidecar({ service: 'catalog-h2', appPort: app.port, config, inboundPort: catalogH2In, identity: id('catalog-h2'), extraArgs: raised });
    guarded = await procs.sidecar({ service: 'guarded', appPort: app.port, config, inboundPort: guardedIn, identity: id('guarded') });
    web = await procs.sidecar({ service: 'web', appPort: app.port, config, identity: id('web'), extraArgs: raised });
    small = await procs.sidecar({ service: 'small', appPort: app.port, config, extraArgs: ['--max-request-headers', '4KiB'] });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') for (const s of sidecars()) console.log(s?.output());
  });

  afterAll(async () => {
    await agent.close();
    await procs.killAll();
    await app.close();
  });

  it('lets a 100 KiB header through an mTLS pair whose outbound and inbound both take 128KiB, to the app whole', async () => {
    const big = 'b'.repeat(BIG);
    const res = await get(agent, `${web.outboundUrl}/big`, { host: 'catalog', 'x-big': big });
    expect(res.status, res.text).toBe(200);
    expect(res.json()).toMatchObject({ name: 'app', path: '/big', headers: { 'x-big': big } });
  });

  it('carries a head near 128 KiB to a peer over HTTP/2 in fields of up to 64 KiB, and refuses a longer field 431 before sending it, the session serving on', async () => {
    const long = await get(agent, `${web.outboundUrl}/long`, { host: 'catalog-h2', 'x-big': 'b'.repeat(BIG) });
    expect(long.status, long.text).toBe(431);
    expect(long.headers['x-skein-reason']).toBe('bad-request');
    expect(long.text).toContain('its x-big field is over 65536 bytes');
    expect(reached('/long')).toBe(0);
    // Near the limit, and sent as written: HPACK's Huffman code makes `~` longer, so nothing shrinks it under nghttp2's 144 KiB block.
    const half = '~'.repeat(63 * 1024);
    const split = await get(agent, `${web.outboundUrl}/split`, { host: 'catalog-h2', 'x-one': half, 'x-two': half });
    expect(split.status, split.text).toBe(200);
    expect(split.json()).toMatchObject({ path: '/split', headers: { 'x-one': half, 'x-two': half } });
  });

  it('refuses the same head 431 at the default limit: on an outbound listener, and on an inbound one from a peer\'s mux stream', async () => {
    const refusedHere = await get(agent, `${guarded.outboundUrl}/refused`, { host: 'catalog', 'x-big': 'b'.repeat(BIG) });
    expect(refusedHere.status).toBe(431);
    expect(refusedHere.headers['x-skein-reason']).toBe('bad-request');
    expect(refusedHere.text).toContain('request headers exceed the limit of 65536 bytes (--max-request-headers)');
    // web takes it; guarded's inbound does not, and says so on the stream (relayed as its answer).
    const refusedThere = await get(agent, `${web.outboundUrl}/refused`, { host: 'guarded', 'x-big': 'b'.repeat(BIG) });
    expect(refusedThere.status).toBe(431);
    expect(refusedThere.headers['x-skein-reason']).toBe('bad-request');
    expect(refusedThere.text).toContain('request headers exceed the limit of 65536 bytes (--max-request-headers)');
    expect(reached('/refused')).toBe(0);
    // The mux connection the refusal came on serves on.
    expect((await get(agent, `${web.outboundUrl}/after`, { host: 'guarded' })).status).toBe(200);
  });

  it('holds HTTP/1.1 heads to 4KiB: an 8 KiB header is 431 naming the limit, a 2 KiB one goes through', async () => {
    const refused = await rawExchange(small.outboundPort, `GET /x HTTP/1.1\r\nHost: app\r\nx-big: ${'a'.repeat(8 * 1024)}\r\n\r\n`);
    expect(refused).toMatch(/^HTTP\/1.1 431/);
    expect(refused).toMatch(/x-skein-reason: bad-request/i);
    expect(refused).toContain('request headers exceed the limit of 4096 bytes (--max-request-headers)');
    const fine = await get(agent, `${small.outboundUrl}/fine`, { host: 'app', 'x-fine': 'a'.repeat(2 * 1024) });
    expect(fine.status, fine.text).toBe(200);
  });

  it('holds HTTP/2 (h2c) heads to 4KiB too: an 8 KiB header is 431 naming the limit, the session serving on', async () => {
    const session = connectH2(`http://127.0.0.1:${small.outboundPort}`);
    try {
      const call = (extra: Record<string, string>) => h2Answer(session, { ':path': '/h2', ':authority': 'app', ...extra });
      const refused = await call({ 'x-big': 'a'.repeat(8 * 1024) });
      expect(refused).toMatchObject({ status: 431, reason: 'bad-request' });
      expect(refused.body).toContain('request headers exceed the limit of 4096 bytes (--max-request-headers)');
      expect((await call({ 'x-fine': 'a'.repeat(2 * 1024) })).status).toBe(200);
    } finally {
      session.close();
    }
  });
});
