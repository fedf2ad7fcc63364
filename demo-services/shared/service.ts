/**
 * What every demo service process does around its own logic: read flags, make the logger and
 * the mesh client, listen, report the bound port (a `listening on HOST:PORT` log line and
 * optionally --port-file), and on SIGTERM/SIGINT stop accepting, finish in-flight requests,
 * close its database and exit 0.
 */
import { createServer, type RequestListener } from 'node:http';
import { renameSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createLogger, type Logger } from '../../common/log.js';
import { Mesh } from './mesh.js';
import { COMMON_FLAGS, intFlag, parseFlags, usage, UsageError, type FlagSpec } from './options.js';

export interface ServiceContext {
  readonly flags: Readonly<Record<string, string>>;
  readonly dataDir: string;
  readonly log: Logger;
  readonly mesh: Mesh;
}

/** A started service: something that listens, and how to stop the rest of it afterwards. */
export interface ServiceApp {
  listen(host: string, port: number): Promise<number>;
  /** Stop accepting and finish in-flight requests. */
  stopListening(): Promise<void>;
  /** Stop background work and close the database; called after stopListening. */
  close(): Promise<void>;
}

export interface ServiceDefinition {
  readonly name: string;
  readonly flags?: Record<string, FlagSpec>;
  start(ctx: ServiceContext): Promise<ServiceApp> | ServiceApp;
}

const SHUTDOWN_GRACE_MS = 5_000;

/** An HTTP service app around a request listener. */
export function httpApp(listener: RequestListener, close: () => Promise<void> | void): ServiceApp {
  const server = createServer({ keepAliveTimeout: 5_000 }, listener);
  return {
    async listen(host, port) {
      server.listen(port, host);
      await once(server, 'listening');
      return (server.address() as { port: number }).port;
    },
    async stopListening() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(timer);
    },
    async close() {
      await close();
    },
  };
}

export async function runService(def: ServiceDefinition, argv: readonly string[]): Promise<void> {
  const specs: Record<string, FlagSpec> = { ...COMMON_FLAGS, ...def.flags };
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage(def.name, specs));
    return;
  }
  let flags: Record<string, string>;
  let port: number;
  try {
    flags = parseFlags(argv, specs);
    port = intFlag(flags, 'port', 0, 65535);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${def.name}: ${err.message}\n${usage(def.name, specs)}`);
    process.exit(2);
  }
  const log = createLogger(def.name);
  const mesh = new Mesh(process.env);
  let app: ServiceApp;
  try {
    app = await def.start({ flags, dataDir: flags['data-dir']!, log, mesh });
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${def.name}: ${err.message}\n`);
    process.exit(2);
  }
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    try {
      await app.stopListening();
      await app.close();
      await mesh.close();
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const host = flags.host!;
  let bound: number;
  try {
    bound = await app.listen(host, port);
  } catch (err) {
    log.fatal({ err, host, port }, `cannot listen on ${host}:${port}: ${(err as Error).message}`);
    process.exit(1);
  }
  if (flags['port-file']) writeAtomically(flags['port-file'], `${bound}\n`);
  log.info({ host, port: bound }, `listening on ${host}:${bound}`);
}

function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}
