import { createServer } from 'node:http';
import { describe, expect, it } from 'vitest';
import { afterWrite } from '../../control-plane/admin-api/conditions.js';
import type { SnapshotPublisher } from '../../control-plane/state/snapshots.js';
import { AdminClient } from '../admin-client.js';
import { editIntentions, withRule } from './intention.js';

type Action = 'allow' | 'deny';
/** `'a>b allow'` → `{source: 'a', destination: 'b', action: 'allow'}` */
const rule = (text: string) => {
  const [pair, action] = text.split(' ');
  const [source, destination] = pair!.split('>');
  return { source: source!, destination: destination!, action: action as Action };
};
const rules = (...texts: string[]) => texts.map(rule);

describe('withRule', () => {
  it('keeps an exact pair ahead of a wildcard rule set after it', () => {
    const first = withRule([], rule('gateway>orders allow'));
    const second = withRule(first.rules, rule('gateway>* deny'));
    expect(second).toEqual({ rules: rules('gateway>orders allow', 'gateway>* deny'), rewritten: false });
    expect(withRule(second.rules, rule('*>* deny')).rules).toEqual(rules('gateway>orders allow', 'gateway>* deny', '*>* deny'));
  });

  it('puts a new rule first among its equals and replaces the rule of its pair', () => {
    const stored = rules('users>catalog allow', 'gateway>orders allow', 'gateway>* deny', '*>payments deny', '*>* deny');
    expect(withRule(stored, rule('orders>payments allow'))).toEqual({
      rules: rules('orders>payments allow', 'users>catalog allow', 'gateway>orders allow', 'gateway>* deny', '*>payments deny', '*>* deny'),
      rewritten: false,
    });
    expect(withRule(stored, rule('*>payments allow')).rules).toEqual(rules('users>catalog allow', 'gateway>orders allow', '*>payments allow', 'gateway>* deny', '*>* deny'));
    expect(withRule(stored, rule('gateway>orders deny')).rules).toEqual(rules('gateway>orders deny', 'users>catalog allow', 'gateway>* deny', '*>payments deny', '*>* deny'));
  });

  it('puts rules stored out of order in precedence order, equals keeping theirs, and drops repeats of a pair', () => {
    // As an older CLI left them: the allow was hidden by the wildcard set after it.
    const stored = rules('*>* allow', 'gateway>* deny', 'gateway>orders allow', '*>orders deny', 'users>orders allow', 'gateway>orders deny');
    expect(withRule(stored, rule('users>catalog allow'))).toEqual({
      rules: rules('users>catalog allow', 'gateway>orders allow', 'users>orders allow', 'gateway>* deny', '*>orders deny', '*>* allow'),
      rewritten: true,
    });
    // A repeat alone is a rewrite too.
    expect(withRule(rules('a>b allow', 'a>b deny'), rule('c>d allow'))).toEqual({ rules: rules('c>d allow', 'a>b allow'), rewritten: true });
  });
});

describe('editIntentions', () => {
  it('says when the write is stored but not published, with the control plane\'s reason (a real HTTP server answering as the control plane does)', async () => {
    const why = 'invalid config in the store (consul), not published: routes/broken: (root): Expected array, received string';
    let publishing: string | undefined = why;
    const publisher = { settled: async () => undefined, current: () => ({ version: '7' }), kept: () => 'snapshot 7', unpublished: () => publishing && `the stored config cannot be composed: ${publishing}` } as unknown as SnapshotPublisher;
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (req.method === 'GET') return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not-found","message":"no intentions stored"}}');
        void afterWrite(publisher).then(({ headers }) => res.writeHead(200, { 'content-type': 'application/json', ...headers }).end(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const api = new AdminClient(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
      const notices: string[] = [];
      const written = await editIntentions(api, (current) => ({ ...current, defaultAction: 'deny' }), (line) => notices.push(line));
      expect(written).toEqual({ defaultAction: 'deny', rules: [] });
      expect(notices).toEqual([`warning: the intentions are stored but not published: sidecars keep snapshot 7, since the stored config cannot be composed: ${why}`]);
      publishing = undefined;
      notices.length = 0;
      await editIntentions(api, (current) => ({ ...current, defaultAction: 'allow' }), (line) => notices.push(line));
      expect(notices).toEqual([]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
