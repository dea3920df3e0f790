import type { RoutePlugin } from './app';
import { registerAssistantRoutes } from './conversations/routes';
import { type ConsoleRoutesOptions, consoleRoutes } from './http/console-routes';
import { registerAsyncRoutes } from './jobs/routes';

/** The route groups beyond the core API, with the console's assets given (`npm run dev`). */
export function servicePluginsWith(opts: { console?: ConsoleRoutesOptions } = {}): RoutePlugin[] {
  return [registerAsyncRoutes, registerAssistantRoutes, consoleRoutes(opts.console)];
}

/** The route groups beyond the core chat API that every deployment serves. */
export const servicePlugins: RoutePlugin[] = servicePluginsWith();
