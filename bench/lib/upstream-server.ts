/**
 * The benchmark's upstream: a `node:http` server answering every request with the same 100 B
 * of JSON. Run as its own process (`node dist/bench/lib/upstream-server.js`) so it does not
 * share an event loop with the load generator; prints `{"port":N}` once listening.
 */
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { compiledScript, type Child, type ChildProcesses } from './children.js';

/** Exactly 100 bytes of JSON. */
export const BODY = Buffer.from(JSON.stringify({ service: 'bench-upstream', ok: true, pad: 'x'.repeat(53) }));

function serve(): void {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length });
    res.end(BODY);
  });
  // Proxies keep pooled connections open for the whole run; don't close them under load.
  server.keepAliveTimeout = 120_000;
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address && typeof address === 'object') process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

export interface RunningUpstream {
  readonly child: Child;
  readonly port: number;
}

export async function startUpstream(children: ChildProcesses): Promise<RunningUpstream> {
  let onPort: (port: number) => void = () => {};
  const port = new Promise<number>((resolve) => (onPort = resolve));
  const child = children.spawn('upstream', process.execPath, [compiledScript(import.meta.url)], {
    onStdoutLine: (line) => {
      const m = /^\{"port":(\d+)\}$/.exec(line.trim());
      if (m) onPort(Number(m[1]));
    },
  });
  const exitedEarly = child.exited.then(() => {
    throw new Error(`upstream server exited before listening:\n${child.output()}`);
  });
  exitedEarly.catch(() => {}); // Only the race below cares; a later exit is someone else's concern.
  return { child, port: await Promise.race([port, exitedEarly]) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) serve();
