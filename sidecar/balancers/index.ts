/** Balancers by the names of the config's `lb` field. */
import type { ServicePolicy } from '../../common/config/schema.js';
import type { BalancerFactory } from './balancer.js';
import { leastRequestPicker } from './least-request.js';
import { randomPicker } from './random.js';
import { ringHashPicker } from './ring-hash.js';
import { roundRobinPicker } from './round-robin.js';

export const BALANCERS: Readonly<Record<ServicePolicy['lb'], BalancerFactory>> = {
  'least-request': leastRequestPicker,
  'round-robin': roundRobinPicker,
  random: randomPicker,
  'ring-hash': ringHashPicker,
};

export * from './balancer.js';
