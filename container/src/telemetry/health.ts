/** A dependency that readiness (`/ready`, `/health/detailed`) reports on. */
export interface DependencyCheck {
  name: string;
  check(signal: AbortSignal): Promise<unknown>;
}
