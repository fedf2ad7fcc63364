/** All catalog traffic moves from v1 to v2 in one change, and back in one change. */
import { shiftCatalog, splitWatch } from './catalog-split.js';
import { checkpoint, type Scenario } from './scenario.js';

export const blueGreen: Scenario = {
  name: 'blue-green',
  summary: 'all catalog traffic switched from v1 to v2 in one change, then back',
  watch: splitWatch,
  async run(demo, io, { holdMs }) {
    io.say('green: every request to catalog goes to v2 at once');
    await shiftCatalog(demo, io, 100);
    await io.hold(holdMs);
    checkpoint(io);
    io.say('blue again: every request goes back to v1 at once');
    await shiftCatalog(demo, io, 0);
  },
};
