import { describe, expect, it } from 'vitest';
import { Instance } from './instance.js';
import { DemoPaths } from './options.js';
import type { ProcessSupervisor } from './processes.js';
import { instance } from './topology.js';

describe('a demo instance\'s sidecar', () => {
  it('gets its bootstrap token in its environment, not on its command line (which anyone can read in ps)', async () => {
    const started: { args: readonly string[]; env?: NodeJS.ProcessEnv }[] = [];
    const supervisor = {
      start: (_name: string, _command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv }) => {
        started.push({ args, env: options.env });
        return { pid: 1 };
      },
    } as unknown as ProcessSupervisor;
    const token = 'skt_secret-bootstrap-token';
    const payments = new Instance(instance('payments-1'), { app: 1001, inbound: 1002, outbound: 1003, admin: 1004 });
    await payments.startSidecar(supervisor, new DemoPaths('/tmp/skein-demo-instance-test'), { grpcAddress: '127.0.0.1:1005', caFile: '/tmp/ca.crt', token: async () => token });

    expect(started).toHaveLength(1);
    expect(started[0]!.args.join(' ')).not.toContain(token);
    expect(started[0]!.args).not.toContain('--token');
    expect(started[0]!.env?.SKEIN_TOKEN).toBe(token);
    expect(started[0]!.args).toEqual(expect.arrayContaining(['--service', 'payments', '--control-plane', '127.0.0.1:1005']));
  });
});
