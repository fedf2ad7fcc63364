/**
 * The file a command reads with `-f FILE` (`-` for stdin), as `skein apply` and `skein inject`
 * take it. A file that cannot be read fails with one line saying why, in words (exit 1),
 * not the raw `EISDIR: illegal operation on a directory, read`.
 */
import { readFile } from 'node:fs/promises';

const REASONS: Record<string, string> = {
  EISDIR: 'is a directory, not a file',
  ENOENT: 'does not exist',
  EACCES: 'cannot be read: permission denied',
};

export async function readInputFile(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    throw new Error(`-f ${file} ${(code && REASONS[code]) ?? `cannot be read: ${message}`}`);
  }
}
