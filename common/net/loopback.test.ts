import { describe, expect, it } from 'vitest';
import { isLoopbackHost, isUnspecifiedHost } from './loopback.js';

describe('isLoopbackHost', () => {
  it('takes 127.0.0.0/8, ::1, localhost and 127.x mapped into IPv6; nothing else', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) expect(isLoopbackHost(host)).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.5', '192.0.2.2', '::ffff:10.0.0.1', 'fe80::1', 'localhost.example', '1127.0.0.1']) expect(isLoopbackHost(host)).toBe(false);
  });
});

describe('isUnspecifiedHost', () => {
  it('takes 0.0.0.0 and :: in any spelling; nothing else', () => {
    for (const host of ['0.0.0.0', '::', '0:0:0:0:0:0:0:0', '::0']) expect(isUnspecifiedHost(host)).toBe(true);
    for (const host of ['127.0.0.1', '::1', '10.0.0.0']) expect(isUnspecifiedHost(host)).toBe(false);
  });
});
