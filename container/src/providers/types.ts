import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../wire/chat';

/** Per-call settings the router passes to a provider. */
export interface CallOptions {
  /** Aborts the upstream call (client disconnect, drain, deadline). */
  signal: AbortSignal;
  /** Per attempt: until the answer (non-stream) or between chunks (stream). */
  timeoutMs: number;
  maxRetries: number;
}

/**
 * A model provider. Closed interface: the router only ever calls these. Errors thrown are
 * `ApiError`s (502/503/504 mapped from the upstream) or `ClientAbortError`.
 */
export interface Provider {
  readonly kind: 'openai' | 'simulator';
  /** A complete (non-streaming) answer. `body.model` is already the upstream model name. */
  complete(body: ChatRequest, opts: CallOptions): Promise<ChatCompletion>;
  /**
   * A stream of chunks. The promise settles once the upstream accepted the request, so
   * failures before that can still be retried or fall back. Usage is always requested.
   */
  stream(body: ChatRequest, opts: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>>;
  /** Cheap reachability check for readiness. */
  check(signal: AbortSignal): Promise<void>;
  /** Model ids the upstream serves (for the OPENAI_BASE_URL shortcut). */
  listModels?(signal: AbortSignal): Promise<string[]>;
}
