import OpenAI from 'openai';
import { Agent } from 'undici';
import {
  ApiError,
  BadRequestError,
  ClientAbortError,
  GatewayTimeoutError,
  ServiceUnavailableError,
  UpstreamError,
} from '../../errors';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../wire/chat';
import type { EmbeddingsCall, EmbeddingsResult } from '../../wire/embeddings';
import type { Provider, ProviderCallOptions } from '../types';
import { LeanOpenAI } from './lean-client';
import { createLeanFetch } from './lean-fetch';

export interface OpenAIProviderOptions {
  baseUrl: string;
  /** The key, or where to read it at each call (a rotated secret then takes effect at once). */
  apiKey: string | undefined | (() => string | undefined);
  /** Keep-alive connections per upstream origin. @default 256 */
  connections?: number;
}

/**
 * Any OpenAI-compatible server (OpenAI, vLLM, Ollama, LiteLLM, Bedrock's endpoint) through
 * the official SDK. The SDK does the retries (429/5xx/connection, honouring retry-after);
 * undici's pooled agent keeps connections warm, which matters more than anything else for
 * added latency.
 */
export class OpenAIProvider implements Provider {
  readonly family = 'openai';
  private readonly client: LeanOpenAI;
  private readonly dispatcher: Agent;
  private readonly readKey: () => string;
  private key: string;

  constructor({ baseUrl, apiKey, connections = 256 }: OpenAIProviderOptions) {
    this.dispatcher = new Agent({ connections, keepAliveTimeout: 30_000 });
    // Local servers (vLLM, Ollama) take no key, but the SDK insists on one.
    this.readKey = typeof apiKey === 'function' ? () => apiKey() || 'no-key' : () => apiKey || 'no-key';
    this.key = this.readKey();
    this.client = new LeanOpenAI({
      baseURL: baseUrl,
      apiKey: this.key,
      maxRetries: 0,
      fetch: createLeanFetch(this.dispatcher),
    });
  }

  /** The SDK client with the current key (one string comparison per call). */
  private sdk(): LeanOpenAI {
    const k = this.readKey();
    if (k !== this.key) {
      this.key = k;
      this.client.useApiKey(k);
    }
    return this.client;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  async complete(body: ChatRequest, opts: ProviderCallOptions): Promise<ChatCompletion> {
    const d = deadline(opts.signal, opts.timeoutMs);
    try {
      const params = { ...body, stream: false } as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming;
      return await this.sdk().chat.completions.create(params, {
        signal: d.signal,
        maxRetries: opts.maxRetries,
      });
    } catch (err) {
      throw d.expired() ? timeoutError(opts.timeoutMs) : mapUpstreamError(err, opts.signal);
    } finally {
      d.clear();
    }
  }

  async stream(body: ChatRequest, opts: ProviderCallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const streamOptions = { ...(body.stream_options ?? {}), include_usage: true };
    const params = {
      ...body,
      stream: true,
      stream_options: streamOptions,
    } as unknown as OpenAI.ChatCompletionCreateParamsStreaming;
    // The deadline covers the wait for the response; once chunks flow, the router's idle
    // timeout takes over (a long answer must not be cut at the first deadline).
    const d = deadline(opts.signal, opts.timeoutMs);
    let stream: AsyncIterable<ChatCompletionChunk>;
    try {
      stream = await this.sdk().chat.completions.create(params, {
        signal: d.signal,
        maxRetries: opts.maxRetries,
      });
    } catch (err) {
      throw d.expired() ? timeoutError(opts.timeoutMs) : mapUpstreamError(err, opts.signal);
    } finally {
      d.stopTimer();
    }
    return mapStreamErrors(stream, opts.signal, d.clear);
  }

  async embed(call: EmbeddingsCall, opts: ProviderCallOptions): Promise<EmbeddingsResult> {
    const d = deadline(opts.signal, opts.timeoutMs);
    try {
      // base64 on the wire: a quarter of the JSON; an upstream that ignores it and sends floats
      // is read as well.
      const res = await this.sdk().embeddings.create(
        {
          model: call.model,
          input: call.input as string[],
          encoding_format: 'base64',
          ...(call.dimensions !== undefined ? { dimensions: call.dimensions } : {}),
          ...(call.user !== undefined ? { user: call.user } : {}),
        },
        { signal: d.signal, maxRetries: opts.maxRetries },
      );
      const data = [...res.data].sort((a, b) => a.index - b.index);
      return {
        vectors: data.map((e) => toVector(e.embedding as unknown)),
        promptTokens: res.usage?.prompt_tokens,
      };
    } catch (err) {
      throw d.expired() ? timeoutError(opts.timeoutMs) : mapUpstreamError(err, opts.signal);
    } finally {
      d.clear();
    }
  }

  async check(signal: AbortSignal): Promise<void> {
    try {
      await this.sdk().models.list({ signal, timeout: 2000, maxRetries: 0 });
    } catch (err) {
      throw mapUpstreamError(err, signal);
    }
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const m of this.sdk().models.list({ signal, timeout: 10_000, maxRetries: 2 }))
        ids.push(m.id);
    } catch (err) {
      throw mapUpstreamError(err, signal);
    }
    return ids;
  }
}

async function* mapStreamErrors(
  stream: AsyncIterable<ChatCompletionChunk>,
  signal: AbortSignal,
  done: () => void,
): AsyncGenerator<ChatCompletionChunk> {
  try {
    yield* stream;
  } catch (err) {
    throw mapUpstreamError(err, signal);
  } finally {
    done();
  }
}

/** A vector as an upstream sent it: base64 little-endian float32, or a JSON array. */
function toVector(v: unknown): Float32Array {
  if (typeof v === 'string') {
    const bytes = Buffer.from(v, 'base64');
    if (bytes.byteLength % 4 !== 0) throw new UpstreamError('The upstream sent a malformed embedding.');
    const out = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return Float32Array.from(v);
  if (v instanceof Float32Array) return v;
  throw new UpstreamError('The upstream sent a malformed embedding.');
}

function timeoutError(ms: number): GatewayTimeoutError {
  return new GatewayTimeoutError(`The upstream model did not answer within ${ms} ms.`);
}

/**
 * The caller's signal plus our own timer. Our own rather than the SDK's `timeout` so that a
 * timeout is told apart from a disconnect reliably, and so retries share one deadline.
 */
function deadline(parent: AbortSignal, ms: number) {
  const ac = new AbortController();
  let fired = false;
  const onParent = () => ac.abort(parent.reason);
  if (parent.aborted) ac.abort(parent.reason);
  else parent.addEventListener('abort', onParent, { once: true });
  let timer: NodeJS.Timeout | undefined = setTimeout(() => {
    fired = true;
    ac.abort(new Error('upstream timeout'));
  }, ms);
  const stopTimer = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  return {
    signal: ac.signal,
    expired: () => fired && !parent.aborted,
    stopTimer,
    clear: () => {
      stopTimer();
      parent.removeEventListener('abort', onParent);
    },
  };
}

/** Translate SDK errors into the statuses OpenAI clients expect from a gateway. */
export function mapUpstreamError(err: unknown, signal?: AbortSignal): Error {
  if (err instanceof ApiError || err instanceof ClientAbortError) return err;
  if (err instanceof OpenAI.APIUserAbortError || (signal?.aborted && !(signal.reason instanceof ApiError))) {
    return signal?.reason instanceof ApiError ? signal.reason : new ClientAbortError();
  }
  if (signal?.aborted && signal.reason instanceof ApiError) return signal.reason;
  if (err instanceof OpenAI.APIConnectionTimeoutError)
    return new GatewayTimeoutError('The upstream model timed out.');
  if (err instanceof OpenAI.APIConnectionError) {
    return new UpstreamError(`Could not reach the upstream model: ${err.message}`);
  }
  if (err instanceof OpenAI.APIError) {
    const status = err.status;
    const detail = err.message;
    if (status === 400 || status === 422) {
      // The request itself is wrong (e.g. context length): the client should see it.
      return new BadRequestError(`Upstream rejected the request: ${detail}`, {
        param: err.param ?? null,
        code: err.code ?? 'upstream_invalid_request',
      });
    }
    if (status === 429) {
      const retryAfter = Number(err.headers?.get?.('retry-after') ?? '');
      return new ServiceUnavailableError('The upstream model is rate limited; retry shortly.', {
        code: 'upstream_rate_limited',
        retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? Math.ceil(retryAfter) : 1,
      });
    }
    return new UpstreamError(
      `The upstream model failed (status ${status ?? 'unknown'}).`,
      status ?? undefined,
    );
  }
  if (err instanceof SyntaxError) return new UpstreamError('The upstream sent a malformed response.');
  return new UpstreamError(`The upstream stream failed: ${(err as Error)?.message ?? String(err)}`);
}
