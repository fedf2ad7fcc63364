/** The demo's fixed ports (gateway, control plane): a clear error when one is taken. */
import { createServer, type Server } from 'node:net';
import { freePorts } from '../common/net/free-ports.js';

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

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
