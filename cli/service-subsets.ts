/** Which instances of a service each of its subsets selects, as `skein get services` counts them and `skein check` judges splits by. */
import type { ServiceView } from '../control-plane/admin-api/services-routes.js';

/** The instances of `view` that carry every label of `subset`. */
export function selectedInstances(view: ServiceView, subset: Pick<ServiceView['subsets'][number], 'labels'>): ServiceView['instances'] {
  return view.instances.filter((i) => Object.entries(subset.labels).every(([k, v]) => i.labels[k] === v));
}
