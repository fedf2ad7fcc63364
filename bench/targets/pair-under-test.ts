/**
 * What the reference-pair tests share (nginx-pair.test.ts, node-pipe-pair.test.ts): a bench
 * upstream, bench identities in a temp dir, two free ports (outbound, inbound), the pair
 * started on them and answering, and everything stopped and removed after the file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { freePorts } from '../../test/support/ports.js';
import { ChildProcesses } from '../lib/children.js';
import { makeBenchIdentities, type BenchIdentities } from '../lib/identities.js';
import { startUpstream } from '../lib/upstream-server.js';
import { waitForTarget, type Target } from './target.js';

export interface PairStart {
  readonly children: ChildProcesses;
  readonly dir: string;
  readonly upstreamPort: number;
  readonly ports: [number, number];
  readonly identities: BenchIdentities;
}

/** Registers the file's beforeAll/afterAll; read `target` and `inboundPort` inside tests. */
export function pairUnderTest(start: (o: PairStart) => Target): { readonly target: Target; readonly inboundPort: number } {
  const children = new ChildProcesses();
  const dir = mkdtempSync(join(tmpdir(), 'skein-bench-test-'));
  const identities = makeBenchIdentities(dir, 'bench-client', 'bench-upstream');
  const state: { target?: Target; inboundPort?: number } = {};
  beforeAll(async () => {
    const upstream = await startUpstream(children);
    const ports = (await freePorts(2)) as [number, number];
    state.inboundPort = ports[1];
    state.target = start({ children, dir, upstreamPort: upstream.port, ports, identities });
    await waitForTarget(state.target);
  });
  afterAll(async () => {
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    get target() {
      return state.target!;
    },
    get inboundPort() {
      return state.inboundPort!;
    },
  };
}
