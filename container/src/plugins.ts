import type { RoutePlugin } from './app';
import { registerAssistantRoutes } from './conversations/routes';

/** The route groups beyond the core chat API that every deployment serves. */
export const servicePlugins: RoutePlugin[] = [registerAssistantRoutes];
