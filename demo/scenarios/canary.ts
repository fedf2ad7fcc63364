/** catalog v2 takes 10 %, then 50 %, then all of the traffic, measured at each step. */
import { shiftCatalog, splitWatch } from './catalog-split.js';
import { checkpoint, type Scenario } from './scenario.js';

export const canary: Scenario = {
  name: 'canary',
  summary: 'catalog v2 at 10% → 50% → 100% of traffic, measured at the gateway',
  watch: splitWatch,
  async run(demo, io, { holdMs }) {
    for (const weight of [10, 50, 100]) {
      checkpoint(io);
      await shiftCatalog(demo, io, weight);
      if (weight !== 100) await io.hold(holdMs);
    }
    io.say('catalog v2 takes all traffic now (v2 answers discountedPriceCents: 10% off). Back to v1: npx skein split catalog v1=100 v2=0');
  },
};
