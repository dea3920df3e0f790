import type { RoutePlugin } from '../app';
import type { Runtime } from '../runtime';

/** Route groups and background workers that `npm run dev` adds to the core service. */
export interface LocalPlugins {
  routes: RoutePlugin[];
  /** Starts local background work (the SQS poller) once the runtime exists. */
  start(rt: Runtime): Promise<void>;
}

export async function localPlugins(): Promise<LocalPlugins> {
  return { routes: [], start: async () => {} };
}
