import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { METRICS, SECRET_ARN_SUFFIX } from '../contract';
import type { Telemetry } from '../telemetry/telemetry';

/** The `<VAR>_SECRET_ARN` variables of an environment, as `[VAR, arn]` pairs. */
function secretVariables(env: NodeJS.ProcessEnv): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(env)) {
    if (k.endsWith(SECRET_ARN_SUFFIX) && v) out.push([k.slice(0, -SECRET_ARN_SUFFIX.length), v]);
  }
  return out;
}

async function readSecret(sm: SecretsManagerClient, variable: string, arn: string, signal?: AbortSignal) {
  const out = await sm.send(
    new GetSecretValueCommand({ SecretId: arn }),
    signal ? { abortSignal: signal } : {},
  );
  if (out.SecretString === undefined)
    throw new Error(`${variable}${SECRET_ARN_SUFFIX}: the secret has no string value`);
  return out.SecretString;
}

/**
 * Load `<VAR>_SECRET_ARN` secrets into `<VAR>` (Lambda has no secret injection; ECS does it
 * itself). A variable already set wins. Runs once at start, before config is read; a
 * {@link SecretRefresher} keeps the values current afterwards.
 */
export async function loadSecretEnv(
  env: NodeJS.ProcessEnv = process.env,
  client?: SecretsManagerClient,
): Promise<string[]> {
  const wanted = secretVariables(env).filter(([target]) => !env[target]);
  const loaded: string[] = [];
  if (wanted.length === 0) return loaded;
  const sm = client ?? new SecretsManagerClient({});
  try {
    for (const [target, arn] of wanted) {
      env[target] = await readSecret(sm, target, arn);
      loaded.push(target);
    }
  } finally {
    if (!client) sm.destroy();
  }
  return loaded;
}

export interface SecretRefresherOptions {
  /** Where the `<VAR>_SECRET_ARN` variables are, and where new values go. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** How often values are read again. 0 turns refreshing off. */
  intervalMs: number;
  /** @default a client from the standard AWS variables, created on first use */
  client?: SecretsManagerClient;
  /** One read failed; the previous value stays. */
  onError?(variable: string, err: Error): void;
  /** A value changed (the name only: values never reach logs). */
  onChange?(variable: string): void;
  /** Longest a refresh may take before it is abandoned for this round. @default 5000 */
  timeoutMs?: number;
}

/**
 * Keeps `<VAR>_SECRET_ARN` secrets current in `<VAR>`: a rotated provider key reaches a running
 * service (background timer) and a warm Lambda (at the start of an invocation, once the interval
 * has passed) without a restart. Readers must take the variable at each use, as the provider
 * families do. A failed read keeps the previous value.
 */
export class SecretRefresher {
  private readonly env: NodeJS.ProcessEnv;
  private client: SecretsManagerClient | undefined;
  private readonly ownClient: boolean;
  private lastRun = Date.now();
  private running: Promise<string[]> | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: SecretRefresherOptions) {
    this.env = o.env ?? process.env;
    this.client = o.client;
    this.ownClient = !o.client;
  }

  /** Whether there is anything to refresh. */
  get enabled(): boolean {
    return this.o.intervalMs > 0 && secretVariables(this.env).length > 0;
  }

  /** Read every secret again now; resolves with the variables whose value changed. */
  refresh(): Promise<string[]> {
    this.running ??= this.readAll().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Refresh if the last refresh is older than the interval (for processes that freeze: Lambda). */
  async refreshIfDue(): Promise<void> {
    if (!this.enabled || Date.now() - this.lastRun < this.o.intervalMs) return;
    await this.refresh();
  }

  /** Refresh every interval in the background (a long-running service). */
  start(): void {
    if (!this.enabled || this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.ownClient) this.client?.destroy();
    this.client = undefined;
  }

  private async readAll(): Promise<string[]> {
    this.lastRun = Date.now();
    const vars = secretVariables(this.env);
    if (vars.length === 0) return [];
    this.client ??= new SecretsManagerClient({});
    const sm = this.client;
    const signal = AbortSignal.timeout(this.o.timeoutMs ?? 5000);
    const changed: string[] = [];
    await Promise.all(
      vars.map(async ([variable, arn]) => {
        try {
          const value = await readSecret(sm, variable, arn, signal);
          if (this.env[variable] !== value) {
            this.env[variable] = value;
            changed.push(variable);
            this.o.onChange?.(variable);
          }
        } catch (err) {
          this.o.onError?.(variable, err instanceof Error ? err : new Error(String(err)));
        }
      }),
    );
    return changed;
  }
}

/** A refresher every `intervalMs` that reports through the runtime's telemetry (names only). */
export function watchSecrets(
  intervalMs: number,
  telemetry: Pick<Telemetry, 'increment' | 'logger'>,
): SecretRefresher {
  return new SecretRefresher({
    intervalMs,
    onChange: (variable) => telemetry.logger.info('secret refreshed', { variable }),
    onError: (variable, err) => {
      telemetry.increment(METRICS.secretRefreshFailures);
      telemetry.logger.warn('secret refresh failed; the previous value stays', {
        variable,
        error: err.message,
      });
    },
  });
}
