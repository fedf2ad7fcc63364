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
 *
 * Proof by binding holds only until the port is released for its real owner to listen on;
 * in that gap another process walking the same ports could hand it out too (two test workers
 * did: a sidecar failed its start with EADDRINUSE). So a port handed out is also reserved
 * machine-wide: a file named after it, created exclusively, holds the pid of the process
 * that took it. Others skip it while that process lives and reclaim it once it has exited.
 *
 * Reclaiming is delete-then-create, so two processes reclaiming the same stale file at once
 * could each delete what the other had just created and both hand the port out. A reclaimer
 * therefore first takes `<port>.lock` (created exclusively), checks the file again under it
 * and only then replaces it; whoever cannot take the lock skips the port (a lock left by a
 * process that died mid-reclaim costs that one port).
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOWEST = 10_000;
/**
 * Ports in the range that fetch and browsers refuse to connect to (the WHATWG "bad ports"
 * list; 10080 is its only one from 10,000 up): tests wait for processes with fetch and
 * open the dashboard in Chromium, which fail on it with "bad port".
 */
const BLOCKED = new Set([10_080]);
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

/** One file per handed-out port, holding the pid of the process that took it. */
export const RESERVATIONS = join(tmpdir(), 'skein-ports');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as { code?: string }).code === 'EPERM';
  }
}

const code = (err: unknown): string | undefined => (err as { code?: string }).code;

/** Creates `path` holding this pid, only if it does not exist; false when it does. */
function createExclusive(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (err) {
    if (code(err) === 'EEXIST') return false;
    throw err;
  }
  writeSync(fd, String(process.pid));
  closeSync(fd);
  return true;
}

/** Whether the reservation at `path` was left by a process that has exited (false when gone or live). */
function stale(path: string): boolean {
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch {
    return false;
  }
  // An empty file is one being written this instant.
  const owner = Number(content);
  return content !== '' && !(Number.isInteger(owner) && owner > 0 && alive(owner));
}

/** Reserves `port` for this process; false when a live process holds it or another is reclaiming it. */
function reserve(port: number): boolean {
  const path = join(RESERVATIONS, String(port));
  try {
    if (createExclusive(path)) return true;
  } catch (err) {
    if (code(err) !== 'ENOENT') throw err;
    mkdirSync(RESERVATIONS, { recursive: true });
    return createExclusive(path);
  }
  if (!stale(path)) return false;
  const lock = `${path}.lock`;
  if (!createExclusive(lock)) return false;
  try {
    // Checked again under the lock: another reclaimer may have replaced it before we took it.
    if (!stale(path)) return false;
    try {
      unlinkSync(path);
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
    }
    // Exclusive even now: a plain reserve() may have created it since the unlink.
    return createExclusive(path);
  } finally {
    unlinkSync(lock);
  }
}

function unreserve(port: number): void {
  try {
    unlinkSync(join(RESERVATIONS, String(port)));
  } catch {
    // Already reclaimed.
  }
}

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
      if (BLOCKED.has(port) || !reserve(port)) continue;
      const server = await tryListen(port);
      if (server) held.push(server);
      else unreserve(port);
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
