import type { ModelConfig } from '../config/service-config';
import { GatewayTimeoutError, isRetryable, ModelNotFoundError } from '../errors';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../wire/chat';
import { ConcurrencyLimiter } from './concurrency';
import { OpenAIProvider } from './openai/openai-provider';
import { SimulatorProvider } from './simulator/simulator-provider';
import type { Provider } from './types';

/** One catalogue entry with its provider and concurrency limiter. */
export interface ModelEntry {
  readonly config: ModelConfig;
  readonly provider: Provider;
  readonly limiter: ConcurrencyLimiter;
  readonly created: number;
}

export interface CompletionResult {
  model: ModelEntry;
  completion: ChatCompletion;
}

export interface StreamResult {
  model: ModelEntry;
  /** The first chunk (already received: the stream is committed to this model). */
  first: ChatCompletionChunk;
  rest: AsyncIterator<ChatCompletionChunk>;
  /** Frees the concurrency slot; call once the stream ended or was abandoned. */
  release: () => void;
}

export interface RouterOptions {
  /** Env fallbacks for models that give no base URL / key env. */
  defaultBaseUrl?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

/**
 * The model catalogue and the call path: concurrency slot, provider call with timeout and
 * retries, then the fallback chain, all before the first byte goes to the client.
 */
export class ModelRouter {
  private readonly entries = new Map<string, ModelEntry>();
  private readonly chains = new Map<string, ModelEntry[]>();

  constructor(models: ModelConfig[], { defaultBaseUrl, env = process.env }: RouterOptions = {}) {
    const created = Math.floor(Date.now() / 1000);
    // Models on one upstream (base URL + key) share one SDK client and connection pool, sized
    // for all their concurrency slots so a slot never waits for a socket.
    const upstreams = new Map<string, { baseUrl: string; keyEnv: string; connections: number }>();
    const upstreamOf = (m: ModelConfig) => {
      const baseUrl = m.baseUrl ?? defaultBaseUrl;
      if (!baseUrl) throw new Error(`Model '${m.id}' has no baseUrl and OPENAI_BASE_URL is not set.`);
      const keyEnv = m.apiKeyEnv ?? 'OPENAI_API_KEY';
      return { key: `${baseUrl}|${keyEnv}`, baseUrl, keyEnv };
    };
    for (const m of models) {
      if (m.provider !== 'openai') continue;
      const u = upstreamOf(m);
      const cur = upstreams.get(u.key) ?? { baseUrl: u.baseUrl, keyEnv: u.keyEnv, connections: 0 };
      cur.connections += m.maxConcurrent;
      upstreams.set(u.key, cur);
    }
    const providers = new Map<string, Provider>();
    for (const [key, u] of upstreams) {
      providers.set(
        key,
        new OpenAIProvider({ baseUrl: u.baseUrl, apiKey: env[u.keyEnv], connections: u.connections }),
      );
    }
    for (const m of models) {
      const provider: Provider =
        m.provider === 'simulator'
          ? new SimulatorProvider(m.simulator)
          : (providers.get(upstreamOf(m).key) as Provider);
      const limiter = new ConcurrencyLimiter(m.id, m.maxConcurrent, m.maxQueue, m.queueTimeoutMs);
      this.entries.set(m.id, { config: m, provider, limiter, created });
    }
  }

  get(id: string): ModelEntry | undefined {
    return this.entries.get(id);
  }

  /** The entry for a public id, or 404 model_not_found. */
  require(id: string): ModelEntry {
    const e = this.entries.get(id);
    if (!e) throw new ModelNotFoundError(id);
    return e;
  }

  list(): ModelEntry[] {
    return [...this.entries.values()];
  }

  /** Totals for the in-flight / queued gauges. */
  load(): { inFlight: number; queued: number } {
    let inFlight = 0;
    let queued = 0;
    for (const e of this.entries.values()) {
      inFlight += e.limiter.inFlight;
      queued += e.limiter.queued;
    }
    return { inFlight, queued };
  }

  /** The model and its fallbacks, built once per model (the catalogue does not change). */
  private chain(id: string): ModelEntry[] {
    const known = this.chains.get(id);
    if (known) return known;
    const first = this.require(id);
    const out = [first];
    for (const f of first.config.fallbacks) {
      const e = this.entries.get(f);
      if (e && !out.includes(e)) out.push(e);
    }
    this.chains.set(id, out);
    return out;
  }

  /**
   * Try the model, then its fallbacks, while failures are retryable. `attempt` runs holding
   * the model's concurrency slot; it returns the result and whether to keep the slot (a
   * stream keeps it until it ends).
   */
  private async withFallbacks<T>(
    id: string,
    signal: AbortSignal,
    attempt: (entry: ModelEntry, release: () => void) => Promise<{ result: T; keepSlot: boolean }>,
  ): Promise<T> {
    let lastError: unknown;
    for (const entry of this.chain(id)) {
      let release: (() => void) | undefined;
      try {
        release = await entry.limiter.acquire(signal);
        const { result, keepSlot } = await attempt(entry, release);
        if (keepSlot) release = undefined;
        return result;
      } catch (err) {
        lastError = err;
        if (!isRetryable(err) || signal.aborted) throw err;
      } finally {
        release?.();
      }
    }
    throw lastError;
  }

  /** Non-streaming call through the fallback chain. */
  complete(id: string, body: ChatRequest, signal: AbortSignal): Promise<CompletionResult> {
    return this.withFallbacks(id, signal, async (entry) => {
      const completion = await entry.provider.complete(upstreamBody(entry, body), callOptions(entry, signal));
      completion.model = entry.config.id;
      return { result: { model: entry, completion }, keepSlot: false };
    });
  }

  /** Streaming call: falls back until some model produced its first chunk. */
  stream(id: string, body: ChatRequest, signal: AbortSignal): Promise<StreamResult> {
    return this.withFallbacks(id, signal, async (entry, release) => {
      // The stream's own signal: the client's, plus the idle timeout's. A generator's return()
      // waits for its pending next(), which a silent upstream never settles: only aborting the
      // request closes the upstream connection.
      const ac = new AbortController();
      const onClient = () => ac.abort(signal.reason);
      if (signal.aborted) onClient();
      else signal.addEventListener('abort', onClient, { once: true });
      const detach = () => signal.removeEventListener('abort', onClient);
      try {
        const iterable = await entry.provider.stream(
          upstreamBody(entry, body),
          callOptions(entry, ac.signal),
        );
        const it = withIdleTimeout(
          iterable[Symbol.asyncIterator](),
          entry.config.timeoutMs,
          entry.config.id,
          ac,
          detach,
        );
        const first = await it.next();
        if (first.done) throw new GatewayTimeoutError('The upstream model closed the stream without output.');
        return { result: { model: entry, first: first.value, rest: it, release }, keepSlot: true };
      } catch (err) {
        detach();
        throw err;
      }
    });
  }
}

function upstreamBody(entry: ModelEntry, body: ChatRequest): ChatRequest {
  return { ...body, model: entry.config.upstreamModel ?? entry.config.id };
}

function callOptions(entry: ModelEntry, signal: AbortSignal) {
  return { signal, timeoutMs: entry.config.timeoutMs, maxRetries: entry.config.maxRetries };
}

/**
 * Fails a stream that goes quiet for longer than the model's timeout (504) instead of hanging.
 * One timer per stream, re-armed on each chunk (not a timer and a promise per chunk).
 */
function withIdleTimeout(
  it: AsyncIterator<ChatCompletionChunk>,
  timeoutMs: number,
  model: string,
  upstream: AbortController,
  done: () => void,
): AsyncIterator<ChatCompletionChunk> {
  let timer: NodeJS.Timeout | undefined;
  let rejectPending: ((err: Error) => void) | undefined;
  const fire = () => {
    timer = undefined;
    const err = new GatewayTimeoutError(`The upstream model '${model}' stopped sending for ${timeoutMs} ms.`);
    upstream.abort(err);
    done();
    void it.return?.();
    rejectPending?.(err);
  };
  const stop = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  return {
    next: () =>
      new Promise((resolve, reject) => {
        rejectPending = reject;
        if (timer) timer.refresh();
        else {
          timer = setTimeout(fire, timeoutMs);
          // An abandoned stream must not keep the process alive at shutdown.
          timer.unref();
        }
        it.next().then(
          (r) => {
            if (r.done) {
              stop();
              done();
            }
            resolve(r);
          },
          (e: unknown) => {
            stop();
            done();
            reject(e);
          },
        );
      }),
    return: async () => {
      stop();
      done();
      await it.return?.();
      return { done: true, value: undefined };
    },
  };
}
