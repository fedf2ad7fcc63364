/**
 * Free TCP ports on 127.0.0.1 for processes that are told their port before they listen (the
 * demo's children, sidecars and Consul agents in tests).
 *
 * Not from the OS's ephemeral range: a port found there with `listen(0)` and closed again is
 * soon handed to some outgoing connection's local end or to another `listen(0)`, and the
 * process meant to listen on it fails with EADDRINUSE. Ports below that range are never
 * given out by the kernel on its own. Each process walks them from its own pid-derived
 * offset, so concurrent test workers and demos rarely even try the same port, and every
 * port is proven free by binding it before it is handed out.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

const LOWEST = 10_000;
/** Linux's default start of the ephemeral range, when /proc does not say. */
const DEFAULT_EPHEMERAL_START = 32_768;

function ephemeralStart(): number {
  try {
    const start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > LOWEST + 1_000 ? start : DEFAULT_EPHEMERAL_START;
  } catch {
    return DEFAULT_EPHEMERAL_START;
  }
}

const end = ephemeralStart();
const span = end - LOWEST;
// Spread processes over the range by pid (consecutive pids land far apart).
let cursor = (process.pid * 7_919) % span;

function tryListen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
  });
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/**
 * `count` distinct ports that were free a moment ago. All are held open until every one is
 * found, so one call never returns a port twice.
 */
export async function freePorts(count: number): Promise<number[]> {
  const held: Server[] = [];
  try {
    for (let tries = 0; held.length < count; tries++) {
      if (tries >= span) throw new Error(`no ${count} free ports between ${LOWEST} and ${end}`);
      const port = LOWEST + cursor;
      cursor = (cursor + 1) % span;
      const server = await tryListen(port);
      if (server) held.push(server);
    }
    return held.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(held.map(close));
  }
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** Whether `port` on 127.0.0.1 can be listened on right now. */
export async function isPortFree(port: number): Promise<boolean> {
  const server = await tryListen(port);
  if (!server) return false;
  await close(server);
  return true;
}
