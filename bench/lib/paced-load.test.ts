import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeFromCompressedBase64 } from 'hdr-histogram-js';
import { afterEach, describe, expect, it } from 'vitest';
import { pacedLoad, summarize } from './paced-load.js';

describe('pacedLoad', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  async function recordingServer(): Promise<{ url: string; arrivals: number[]; hosts: Set<string>; peers: Set<number> }> {
    const arrivals: number[] = [];
    const hosts = new Set<string>();
    const peers = new Set<number>();
    server = createServer((req, res) => {
      arrivals.push(performance.now());
      hosts.add(req.headers.host ?? '');
      peers.add(req.socket.remotePort!);
      res.end('{"ok":true}');
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, arrivals, hosts, peers };
  }

  it('sends the requests evenly spaced over every connection, not in bursts', async () => {
    const target = await recordingServer();
    const before = performance.now();
    const run = await pacedLoad({ url: target.url, host: 'bench-upstream', rate: 100, connections: 16, durationSeconds: 2 });
    expect(run).toMatchObject({ requests: 200, errors: 0 });
    expect(target.hosts).toEqual(new Set(['bench-upstream']));
    expect(target.peers.size).toBe(16);
    // Request k goes out no earlier than k × 10 ms after the start, so the k-th arrival (same
    // process, same clock) cannot come sooner. A stall on a busy machine only makes requests
    // later; a burst-paced tool (autocannon -R, hey -q) sends most of each second's quota early.
    const t = [...target.arrivals].sort((a, b) => a - b);
    const early = t.filter((arrival, k) => arrival < before + k * 10 - 0.5);
    expect(early).toEqual([]);
    expect(t[t.length - 1]! - before).toBeGreaterThan(1990);
  });

  it('sends the warm-up first on the same connections and records only what follows', async () => {
    const target = await recordingServer();
    const run = await pacedLoad({ url: target.url, rate: 100, connections: 4, durationSeconds: 1, warmupSeconds: 0.5 });
    expect(target.arrivals).toHaveLength(150);
    expect(target.peers.size).toBe(4);
    expect(run).toMatchObject({ requests: 100, warmupRequests: 50, errors: 0 });
    expect(summarize([run]).requests).toBe(100);
    expect(decodeFromCompressedBase64(run.histogram).totalCount).toBe(100);
    expect(run.elapsedSeconds).toBeLessThan(1.45);
  });

  it('counts failed requests and merges runs into one latency summary', async () => {
    const target = await recordingServer();
    const ok = await pacedLoad({ url: target.url, rate: 100, connections: 4, durationSeconds: 1 });
    server!.close();
    server!.closeAllConnections();
    server = undefined;
    const failed = await pacedLoad({ url: target.url, rate: 100, connections: 4, durationSeconds: 0.2 });
    expect(failed.errors).toBe(20);
    const summary = summarize([ok, ok]);
    expect(summary.requests).toBe(200);
    expect(summary.p50Ms).toBeGreaterThan(0);
    expect(summary.p50Ms).toBeLessThanOrEqual(summary.p99Ms);
    expect(summary.p99Ms).toBeLessThanOrEqual(summary.p999Ms);
    expect(summary.p999Ms).toBeLessThanOrEqual(summary.maxMs);
  });
});
