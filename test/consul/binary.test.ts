/**
 * Without a consul binary, a test that needs one fails (never skips) with a message saying how
 * to install it. Runs everywhere: no agent is started.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { consulBinary, startConsul } from '../support/consul.js';
import { tempDir } from '../support/index.js';

const saved = { CONSUL_BIN: process.env.CONSUL_BIN, PATH: process.env.PATH, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME };

/** An environment where no consul can be found: a missing CONSUL_BIN, a PATH without consul, an empty cache. */
function hideConsul(): void {
  const empty = tempDir('skein-no-consul-');
  process.env.CONSUL_BIN = `${empty}/consul`;
  process.env.PATH = '/usr/bin:/bin';
  process.env.XDG_CACHE_HOME = empty;
}

afterEach(() => {
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

describe('no consul binary', () => {
  it('consulBinary() and startConsul() fail naming the install script and CONSUL_BIN', async () => {
    hideConsul();
    expect(() => consulBinary()).toThrow(/bash scripts\/install-consul\.sh.*export CONSUL_BIN=/);
    await expect(startConsul()).rejects.toThrow(/no consul binary: these tests run a real Consul agent/);
  });

  it('CONSUL_BIN naming an existing file wins over everything else', () => {
    hideConsul();
    process.env.CONSUL_BIN = process.execPath;
    expect(consulBinary()).toBe(process.execPath);
  });
});
