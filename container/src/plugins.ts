import type { RoutePlugin } from './app';
import { registerAssistantRoutes } from './conversations/routes';
import { registerResponsesRoutes } from './http/responses-routes';
import { registerAsyncRoutes } from './jobs/routes';

/** The route groups beyond the core chat API that every deployment serves. */
export const servicePlugins: RoutePlugin[] = [
  registerAsyncRoutes,
  registerAssistantRoutes,
  registerResponsesRoutes,
];
