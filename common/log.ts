/**
 * Structured logs (pino, JSON lines on stdout). Each process makes one logger at start and
 * passes it down; nothing logs from a request's success path.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, level = process.env.SKEIN_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
