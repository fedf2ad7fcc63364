import { describe, expect, it } from 'vitest';
import { filterTracestate } from './tracestate.js';

describe('tracestate filter (W3C trace-context level 1 §3.3)', () => {
  it('passes a valid list on as it came, optional whitespace and all', () => {
    for (const valid of ['rojo=00f067aa0ba902b7', 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE', 'foo=1 \t , \t bar=2, \t baz=3', 'a= leading spaces are the value', 'tenant@sys=1,0tenant@s=2']) {
      expect(filterTracestate(valid), valid).toBe(valid);
    }
    // Every character the grammar allows (the W3C test suite's test_tracestate_all_allowed_characters).
    const key = 'abcdefghijklmnopqrstuvwxyz0123456789_-*/';
    let value = '';
    for (let c = 0x20; c <= 0x7e; c++) if (c !== 0x2c && c !== 0x3d) value += String.fromCharCode(c);
    expect(filterTracestate(`${key}=${value}`)).toBe(`${key}=${value}`);
    expect(filterTracestate(`${key}@a-z0-9_-*/=${value}`)).toBe(`${key}@a-z0-9_-*/=${value}`);
  });

  it('drops a member whose key or value breaks the grammar and keeps the others in order', () => {
    for (const bad of [
      'foo =1', // space in the key
      'FOO=1', // keys are lowercase
      'foo.bar=1',
      '1abc=1', // a simple key starts with a letter
      '_a=1',
      'foo@=1', // empty system id
      '@foo=1', // empty tenant id
      'foo@@bar=1',
      'foo@bar@baz=1',
      't@1sys=1', // a system id starts with a letter
      'novalue',
      'k=', // an empty value
      '=v',
      'k=a=b', // `=` in a value
      'k=tab\there', // tabs are no value characters
      'k=caf\u00e9', // nor non-ASCII
      `${'z'.repeat(257)}=1`, // keys up to 256 characters
      `${'t'.repeat(242)}@v=1`, // tenant ids up to 241
      `t@${'v'.repeat(15)}=1`, // system ids up to 14
      `k=${'v'.repeat(257)}`, // values up to 256
    ]) {
      expect(filterTracestate(`first=1,${bad},last=2`), bad).toBe('first=1,last=2');
      expect(filterTracestate(bad), bad).toBeUndefined();
    }
    // The longest of each are valid.
    for (const edge of [`${'z'.repeat(256)}=1`, `${'t'.repeat(241)}@${'v'.repeat(14)}=1`, `k=${'v'.repeat(256)}`]) {
      expect(filterTracestate(edge)).toBe(edge);
    }
  });

  it('keeps the first of a repeated key (the left-most is the latest position)', () => {
    expect(filterTracestate('foo=1,foo=1')).toBe('foo=1');
    expect(filterTracestate('foo=new,bar=2,foo=old')).toBe('foo=new,bar=2');
    // A key that is a prefix of another is another key.
    expect(filterTracestate('foo=1,fo=2,foob=3')).toBe('foo=1,fo=2,foob=3');
  });

  it('keeps the first 32 members and drops the rest', () => {
    const members = Array.from({ length: 40 }, (_, i) => `bar${i}=${i}`);
    expect(filterTracestate(members.slice(0, 32).join(','))).toBe(members.slice(0, 32).join(','));
    expect(filterTracestate(members.join(','))).toBe(members.slice(0, 32).join(','));
    // Dropped members make room: 32 valid ones among invalid ones all go on.
    const mixed = members.slice(0, 32).flatMap((m) => [m, 'BAD=1']).join(',');
    expect(filterTracestate(mixed)).toBe(members.slice(0, 32).join(','));
  });

  it('drops empty members and sends no header for an empty or whitespace-only list', () => {
    expect(filterTracestate('foo=1,,bar=2')).toBe('foo=1,bar=2');
    expect(filterTracestate(',foo=1, ,')).toBe('foo=1');
    expect(filterTracestate(' \tfoo=1\t ')).toBe(' \tfoo=1\t '); // nothing dropped: as it came
    for (const empty of ['', ' ', ',', ' , \t,']) expect(filterTracestate(empty), JSON.stringify(empty)).toBeUndefined();
  });
});
