import { consumers, kvBuckets, objectStores, streams } from '@ppc/proto';
import type { Resources } from './provision.ts';

/** Everything the mesh needs for the given worker regions: what `npm start` provisions. */
export function allResources(regions: readonly string[] = ['local']): Resources {
  return {
    streams: Object.values(streams),
    consumers: [
      consumers.system,
      consumers.autoscaler,
      consumers.systemRecorder,
      // The notifier's durables are system's to create: on first start they take over from the retired one.
      ...regions.flatMap((r) => [consumers.reportWorker(r), consumers.urlChecker(r)]),
    ],
    kv: Object.values(kvBuckets),
    objectStores: Object.values(objectStores),
  };
}
