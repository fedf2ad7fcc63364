import { describe, expect, it } from 'vitest';
import { compileHashKey, cookieValue, queryValue } from './hash-key.js';
import { ringHash } from './ring-hash.js';

describe('ring-hash keys', () => {
  it('reads the header, cookie or query parameter hashOn names, and nothing without it', () => {
    expect(compileHashKey(undefined)).toBeNull();
    const byHeader = compileHashKey({ header: 'X-User' })!;
    expect(byHeader({ 'x-user': 'alice' }, '/', 'catalog')).toBe(ringHash('alice'));
    expect(byHeader({ 'x-user': ['a', 'b'] }, '/', 'catalog')).toBe(ringHash('a, b'));
    expect(byHeader({}, '/', 'catalog')).toBeUndefined();
    expect(compileHashKey({ header: 'host' })!({}, '/', 'catalog:8080')).toBe(ringHash('catalog:8080'));
    expect(compileHashKey({ cookie: 'sid' })!({ cookie: 'a=1; sid=s-42; b=2' }, '/', '')).toBe(ringHash('s-42'));
    expect(compileHashKey({ query: 'user' })!({}, '/p?x=1&user=bob%20b', '')).toBe(ringHash('bob b'));
  });

  it('takes an empty cookie for none, so clients without a session are balanced at random, not all sent to one endpoint', () => {
    const byCookie = compileHashKey({ cookie: 'sid' })!;
    expect(byCookie({ cookie: 'a=1; sid=; b=2' }, '/', '')).toBeUndefined();
    expect(byCookie({ cookie: 'sid=; sid=s-1' }, '/', '')).toBeUndefined();
  });

  it('finds a cookie among several Cookie lines, by its whole name', () => {
    expect(cookieValue(['a=1', ' sid = x ; c=3'], 'sid')).toBe('x');
    expect(cookieValue('xsid=1; sidx=2', 'sid')).toBeUndefined();
    expect(cookieValue(undefined, 'sid')).toBeUndefined();
    expect(cookieValue('sid=a=b', 'sid')).toBe('a=b');
  });

  it('reads a query parameter only from the query', () => {
    expect(queryValue('/user=1', 'user')).toBeUndefined();
    expect(queryValue('/p?user=1&user=2', 'user')).toBe('1');
    expect(queryValue('/p?other=1', 'user')).toBeUndefined();
  });
});
