/** Ports for the demo's processes: free ones from the OS, and a clear error when a chosen one is taken. */
import { createServer, type Server } from 'node:net';

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/**
 * `count` distinct free ports on 127.0.0.1. All listeners stay open until every port is
 * known, so one call never hands out a port twice.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOn(0));
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map(close));
  }
}

export class PortInUseError extends Error {
  override name = 'PortInUseError';
}

/** Resolves `port` (0 = a free one); a fixed port that is taken fails with what to do about it. */
export async function claimPort(port: number, what: string, flag: string): Promise<number> {
  if (port === 0) return (await freePorts(1))[0]!;
  try {
    await close(await listenOn(port));
    return port;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    throw new PortInUseError(`port ${port} for the ${what} is in use (another demo running? stop it, or pick another port with ${flag} N, 0 for any)`);
  }
}
