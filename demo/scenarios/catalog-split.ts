/** Shared by the canary and blue-green scenarios: set catalog's split and measure it at the gateway. */
import type { DemoClient } from './demo-client.js';
import { percent, type ScenarioIo } from './scenario.js';

const SAMPLE = 40;

/** Sets v2's weight, then measures the share of v2 answers over SAMPLE product views; checks it is about right. */
export async function shiftCatalog(demo: DemoClient, io: ScenarioIo, v2Weight: number): Promise<void> {
  const version = await demo.setSplit({ v1: 100 - v2Weight, v2: v2Weight });
  io.say(`skein split catalog v1=${100 - v2Weight} v2=${v2Weight}   (snapshot ${version}, pushed to every sidecar)`);
  if (version) await demo.waitForSnapshot('gateway', version);
  const share = await demo.catalogShare(SAMPLE);
  io.show(`${SAMPLE} views of GET /api/products/p1: ${share.v2} answered by v2 (${percent(share.v2, SAMPLE)}), ${share.v1} by v1, ${share.failed} failed`);
  const measured = share.v2 / SAMPLE;
  const wanted = v2Weight / 100;
  // Exact at 0 and 100; otherwise within what chance allows for 40 draws.
  const near = v2Weight === 0 || v2Weight === 100 ? measured === wanted : Math.abs(measured - wanted) <= 0.25;
  io.check(share.failed === 0 && near, `v2 share ${percent(share.v2, SAMPLE)} for a weight of ${v2Weight}%, no failed request`);
}

export const splitWatch = (demo: DemoClient): string[] => [
  `dashboard ${demo.state.dashboardUrl} (catalog's v1/v2 weights and request rates)`,
  'npx skein stat catalog          (requests per subset)',
  'npx skein get routes catalog    (the split in force)',
];
