/**
 * External programs a benchmark needs (nginx, wrk): found on PATH (or in /usr/sbin), else
 * installed from Debian with apt-get when we may, else a clear error saying how to get them.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export class MissingToolError extends Error {
  constructor(tool: string, debPackage: string, why: string) {
    super(`${tool} is required for this benchmark and is not installed (${why}). Install it with: sudo apt-get install -y ${debPackage}`);
    this.name = 'MissingToolError';
  }
}

export function findOnPath(command: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** The path of `command`, installing `debPackage` with apt-get first if it is missing. */
export function ensureTool(command: string, debPackage: string, log: (msg: string) => void): string {
  const found = findOnPath(command);
  if (found) return found;
  if (process.getuid?.() !== 0) throw new MissingToolError(command, debPackage, 'not root, so not installing it myself');
  if (!findOnPath('apt-get')) throw new MissingToolError(command, debPackage, 'no apt-get on this machine');
  log(`${command} not found; installing Debian package ${debPackage}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): void => {
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', debPackage], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  try {
    install();
  } catch {
    try {
      // A fresh machine may have no package lists yet.
      execFileSync('apt-get', ['update', '-qq'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      install();
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim().split('\n').slice(-3).join(' ');
      throw new MissingToolError(command, debPackage, `apt-get install failed: ${stderr}`);
    }
  }
  const installed = findOnPath(command);
  if (!installed) throw new MissingToolError(command, debPackage, `package ${debPackage} installed but ${command} is still not on PATH`);
  return installed;
}
