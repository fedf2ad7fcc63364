/**
 * Reads a V8 `.cpuprofile` (what `--profile` writes for each sidecar) and says where the busy
 * time went: self time by function and by area (Skein's own modules, each npm package, Node's
 * internals, native code), idle excluded, as shares of the busy time. Run it as
 * `node dist/bench/lib/profile-summary.js FILE.cpuprofile [TOP]`.
 *
 * Profiles are wall-clock samples: time the process spent preempted inside a syscall counts
 * as that syscall's (native `writev`, `writeLatin1String`), so on a loaded machine native
 * writes look dearer than the CPU they use; compare areas across runs, not absolute times.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface Row {
  readonly name: string;
  readonly ms: number;
  /** Share of the busy (non-idle) time, 0..1. */
  readonly share: number;
}

export interface ProfileSummary {
  readonly busyMs: number;
  readonly idleMs: number;
  readonly functions: readonly Row[];
  readonly areas: readonly Row[];
}

/** Skein's compiled modules by path under dist/, packages by name, Node's by module, the rest by V8's own label. */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const dist = url.lastIndexOf('/dist/');
  if (dist >= 0) return `skein:${url.slice(dist + '/dist/'.length)}`;
  if (url.startsWith('node:')) return url;
  if (url === '') return functionName.startsWith('(') ? functionName : `native ${functionName}`;
  return url;
}

function rows(totals: Map<string, number>, busyUs: number, top: number): Row[] {
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, ms: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
}

export function summarizeProfile(profile: CpuProfile, top = 30): ProfileSummary {
  const frames = new Map<number, CallFrame>();
  for (const n of profile.nodes) frames.set(n.id, n.callFrame);
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = frames.get(profile.samples[i]!);
    const us = profile.timeDeltas[i] ?? 0;
    if (frame === undefined) continue;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const area = areaOf(frame);
    const name = `${frame.functionName || '(anonymous)'} ${area}${frame.lineNumber >= 0 ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  return { busyMs: busyUs / 1000, idleMs: idleUs / 1000, functions: rows(byFunction, busyUs, top), areas: rows(byArea, busyUs, top) };
}

export function formatSummary(s: ProfileSummary): string {
  const line = (r: Row): string => `${r.ms.toFixed(1).padStart(9)} ms ${(100 * r.share).toFixed(1).padStart(5)}%  ${r.name}`;
  return [
    `busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms`,
    'self time by function:',
    ...s.functions.map(line),
    'self time by area:',
    ...s.areas.map(line),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, top] = process.argv.slice(2);
  if (file === undefined) {
    console.error('usage: node dist/bench/lib/profile-summary.js FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  console.log(formatSummary(summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top ? Number(top) : 30)));
}
