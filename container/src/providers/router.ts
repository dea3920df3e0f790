import {
  BadRequestError,
  GatewayTimeoutError,
  isRetryable,
  ModelNotFoundError,
  ServiceUnavailableError,
} from '../errors';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../wire/chat';
import type { EmbeddingsCall, EmbeddingsResult } from '../wire/embeddings';
import type { Endpoint } from './catalogue';
import { ConcurrencyLimiter } from './concurrency';
import type { CatalogueEntry, ModelConfig } from './registry';
import type { Provider, ProviderCallOptions } from './types';

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

export interface EmbeddingsCallResult {
  model: ModelEntry;
  result: EmbeddingsResult;
}

const ENDPOINT_NAMES: Record<Endpoint, string> = {
  chat: 'chat completions (/v1/chat/completions, /v1/responses)',
  embeddings: 'embeddings (/v1/embeddings)',
};

/**
 * The model catalogue and the call path: concurrency slot, provider call with timeout and
 * retries, then the fallback chain, all before the first byte goes to the client. Which family
 * serves an entry is the provider's business: the router never names one.
 */
export class ModelRouter {
  private entries = new Map<string, ModelEntry>();
  private chains = new Map<string, ModelEntry[]>();
  /** While the catalogue is still being discovered: why (unknown ids then answer 503, not 404). */
  pending: (() => string | null) | null = null;

  constructor(catalogue: readonly CatalogueEntry[] = []) {
    this.replace(catalogue);
  }

  /**
   * Serve another catalogue (models discovered after start). Calls under way keep the entries
   * they hold; concurrency limiters of ids that stay are kept.
   */
  replace(catalogue: readonly CatalogueEntry[]): void {
    const created = Math.floor(Date.now() / 1000);
    const next = new Map<string, ModelEntry>();
    for (const { config: m, provider } of catalogue) {
      const old = this.entries.get(m.id);
      const limiter =
        old && old.limiter.maxConcurrent === m.maxConcurrent
          ? old.limiter
          : new ConcurrencyLimiter(m.id, m.maxConcurrent, m.maxQueue, m.queueTimeoutMs);
      next.set(m.id, { config: m, provider, limiter, created: old?.created ?? created });
    }
    this.entries = next;
    this.chains = new Map();
  }

  get(id: string): ModelEntry | undefined {
    return this.entries.get(id);
  }

  /**
   * The entry for a public id, or 404 model_not_found; with `endpoint`, a model that does not
   * serve it is a 400 that says what it serves.
   */
  require(id: string, endpoint?: Endpoint): ModelEntry {
    const e = this.entries.get(id);
    if (!e) {
      const why = this.pending?.();
      if (why) {
        throw new ServiceUnavailableError(`The model catalogue is not loaded yet (${why}); retry shortly.`, {
          code: 'models_unavailable',
          retryAfterSeconds: 5,
        });
      }
      throw new ModelNotFoundError(id);
    }
    if (endpoint && !e.config.endpoints.includes(endpoint)) {
      throw new BadRequestError(
        `The model '${id}' does not serve ${ENDPOINT_NAMES[endpoint]}; it serves ${e.config.endpoints.map((x) => ENDPOINT_NAMES[x]).join(' and ')}.`,
        { param: 'model', code: 'unsupported_model' },
      );
    }
    return e;
  }

  /** Whether `id` is in the catalogue and serves `endpoint`. */
  serves(id: string, endpoint: Endpoint): boolean {
    return this.entries.get(id)?.config.endpoints.includes(endpoint) ?? false;
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
  private chain(id: string, endpoint: Endpoint): ModelEntry[] {
    const key = `${endpoint}\0${id}`;
    const known = this.chains.get(key);
    if (known) return known;
    const first = this.require(id);
    const out = [first];
    for (const f of first.config.fallbacks) {
      const e = this.entries.get(f);
      if (e && !out.includes(e) && e.config.endpoints.includes(endpoint)) out.push(e);
    }
    this.chains.set(key, out);
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
    endpoint: Endpoint = 'chat',
  ): Promise<T> {
    let lastError: unknown;
    for (const entry of this.chain(id, endpoint)) {
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

  /** Embeddings through the fallback chain (fallbacks that do not serve embeddings are skipped). */
  embed(id: string, call: EmbeddingsCall, signal: AbortSignal): Promise<EmbeddingsCallResult> {
    return this.withFallbacks(
      id,
      signal,
      async (entry) => {
        const embed = entry.provider.embed;
        if (!embed)
          throw new BadRequestError(`The model '${entry.config.id}' cannot embed.`, { param: 'model' });
        const result = await embed.call(
          entry.provider,
          { ...call, model: entry.config.upstreamModel ?? entry.config.id },
          callOptions(entry, signal),
        );
        return { result: { model: entry, result }, keepSlot: false };
      },
      'embeddings',
    );
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

function callOptions(entry: ModelEntry, signal: AbortSignal): ProviderCallOptions {
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
