import type { CacheDecision, ResponseCache } from '../cache/response-cache';
import type { ServiceConfig } from '../config/service-config';
import { ApiError, ClientAbortError } from '../errors';
import type { Principal } from '../keys/key-store';
import type { AdmissionResult, Limiter } from '../limits/limiter';
import type { ModelRouter, StreamResult } from '../providers/router';
import type { Telemetry } from '../telemetry/telemetry';
import { countTextTokens } from '../tokens/count';
import { costUsd } from '../usage/pricing';
import type { UsageRecorder } from '../usage/usage-recorder';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, Usage } from '../wire/chat';
import { type Prepared, prepareRequest } from './prepare';

export interface ChatServiceDeps {
  config: ServiceConfig;
  router: ModelRouter;
  limiter: Limiter;
  cache: ResponseCache | null;
  /** Where the call's one usage record goes (the recorder; the worker holds records back). */
  usage: Pick<UsageRecorder, 'record'>;
  telemetry: Telemetry;
}

export interface CallOptions {
  requestId: string;
  signal: AbortSignal;
  /** The client's Cache-Control header (`no-store` bypasses the cache). */
  cacheControl?: string | undefined;
  /** `sync`, `async` or `assistant`: recorded on the usage row. */
  source: string;
  /** Skip the limiter (the async worker: admission happened at submission). */
  skipAdmission?: boolean;
}

export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS';

/** What finishing a call reports back (for logs and headers). */
export interface CallSummary {
  model: string;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  estimated: boolean;
  ttftMs: number | undefined;
}

/**
 * One chat call from admission to its single usage record. HTTP-free: the HTTP routes, the
 * async worker and the assistant all drive calls through this.
 */
export class ChatCall {
  readonly startedAt = performance.now();
  cacheStatus: CacheStatus = 'BYPASS';
  private admission: AdmissionResult = { reservation: null, headers: {} };
  private finished: CallSummary | null = null;
  private firstTokenAt: number | undefined;

  constructor(
    private readonly deps: ChatServiceDeps,
    readonly principal: Principal,
    readonly prepared: Prepared,
    readonly opts: CallOptions,
    private readonly cacheDecision: CacheDecision,
  ) {}

  get body(): ChatRequest {
    return this.prepared.body;
  }

  get modelId(): string {
    return this.prepared.entry.config.id;
  }

  /** Rate-limit and cache headers for the response. */
  headers(): Record<string, string> {
    return { ...this.admission.headers, 'x-tollgate-cache': this.cacheStatus };
  }

  /** Admission and cache lookup, concurrently (one Redis round trip of latency). */
  async admit(): Promise<ChatCompletion | null> {
    const { limiter, cache } = this.deps;
    const { reserveTokens, reserveCostUsd } = this.prepared;
    const admitting = this.opts.skipAdmission
      ? Promise.resolve(this.admission)
      : limiter.admit(this.principal.keyId, this.principal.limits, reserveTokens, reserveCostUsd);
    const decision = this.cacheDecision;
    const lookup = decision.cacheable && cache ? cache.get(decision.key) : Promise.resolve(null);
    const [admission, hit] = await Promise.all([admitting, lookup]);
    this.admission = admission;
    if (decision.cacheable) this.cacheStatus = hit ? 'HIT' : 'MISS';
    return hit;
  }

  /** What finish() recorded, once the call finished. */
  get summary(): CallSummary | null {
    return this.finished;
  }

  markFirstToken(): void {
    this.firstTokenAt ??= performance.now();
  }

  /** Store a fresh completion in the cache when the request was cacheable. */
  async remember(completion: ChatCompletion): Promise<void> {
    const d = this.cacheDecision;
    if (d.cacheable && this.cacheStatus === 'MISS' && this.deps.cache)
      await this.deps.cache.set(d.key, completion);
  }

  /**
   * Record the call's one usage record and reconcile the reservation. Idempotent: only the
   * first call counts. `usage` is the upstream's; without it, `deliveredText` is counted.
   */
  finish(outcome: {
    status: number;
    usage?: Usage | null | undefined;
    deliveredText?: string;
    errorCode?: string | undefined;
    cached?: boolean;
  }): CallSummary {
    if (this.finished) return this.finished;
    const model = this.prepared.entry.config;
    const cached = outcome.cached ?? false;
    const delivered = outcome.deliveredText ?? '';
    let promptTokens = 0;
    let completionTokens = 0;
    let cachedTokens = 0;
    let estimated = false;
    if (outcome.usage) {
      // An upstream's usage is trusted for amounts, not for types: a missing or malformed count
      // is ours instead (the prompt as admitted, the delivered text), and the record says so.
      const p = tokenCount(outcome.usage.prompt_tokens);
      const c = tokenCount(outcome.usage.completion_tokens);
      promptTokens = p ?? this.prepared.promptTokens;
      completionTokens = c ?? countTextTokens(delivered);
      cachedTokens = tokenCount(outcome.usage.prompt_tokens_details?.cached_tokens) ?? 0;
      estimated = p === null || c === null;
    } else if (outcome.status === 200 || outcome.status === 499 || delivered !== '') {
      // Cut short (or an upstream that sends no usage): count what was delivered ourselves.
      // A request that failed before the model produced anything is not billed.
      promptTokens = this.prepared.promptTokens;
      completionTokens = countTextTokens(delivered);
      estimated = true;
    }
    const cost = cached ? 0 : costUsd(model, { promptTokens, completionTokens, cachedTokens });
    const ttftMs =
      this.firstTokenAt !== undefined ? Math.round(this.firstTokenAt - this.startedAt) : undefined;
    this.finished = { model: model.id, promptTokens, completionTokens, costUsd: cost, estimated, ttftMs };
    this.deps.usage.record({
      requestId: this.opts.requestId,
      keyId: this.principal.keyId,
      owner: this.principal.owner,
      model: model.id,
      promptTokens,
      completionTokens,
      cachedTokens,
      costUsd: cost,
      latencyMs: Math.round(performance.now() - this.startedAt),
      ttftMs: ttftMs ?? null,
      status: outcome.status,
      cached,
      estimated,
      stream: this.body.stream === true,
      source: this.opts.source,
      ts: Date.now(),
      ...(outcome.errorCode ? { errorCode: outcome.errorCode } : {}),
    });
    // Cache hits cost nothing and use no model tokens: the whole reservation goes back.
    void this.deps.limiter.reconcile(
      this.admission.reservation,
      cached ? 0 : promptTokens + completionTokens,
      cost,
    );
    return this.finished;
  }

  /** Non-streaming: cache hit, or the model through the router; the usage record included. */
  async complete(hit: ChatCompletion | null): Promise<ChatCompletion> {
    if (hit) {
      const c = { ...hit, id: `chatcmpl-${this.opts.requestId}`, created: Math.floor(Date.now() / 1000) };
      this.finish({ status: 200, usage: hit.usage ?? null, cached: true });
      return c;
    }
    try {
      const { completion } = await this.deps.router.complete(this.modelId, this.body, this.opts.signal);
      this.markFirstToken();
      const usage = completion.usage ?? null;
      // The delivered text is only needed (and only built) when the usage lacks the completion
      // count: building it serializes any tool calls.
      const counted = tokenCount(usage?.completion_tokens) !== null;
      this.finish({ status: 200, usage, ...(counted ? {} : { deliveredText: completionText(completion) }) });
      await this.remember(completion);
      return completion;
    } catch (err) {
      this.fail(err);
      throw err;
    }
  }

  /** Open a stream through the router (fallbacks until a first chunk arrives). */
  openStream(): Promise<StreamResult> {
    return this.deps.router.stream(this.modelId, this.body, this.opts.signal);
  }

  /** Record a failed call (status from the error; 499 when the client went away). */
  fail(err: unknown, deliveredText?: string): void {
    const status = err instanceof ApiError ? err.status : err instanceof ClientAbortError ? 499 : 500;
    if (status >= 500 && !(err instanceof ClientAbortError)) this.deps.telemetry.upstreamError(this.modelId);
    const code =
      err instanceof ApiError
        ? (err.code ?? err.type)
        : err instanceof ClientAbortError
          ? 'client_closed'
          : 'internal_error';
    this.finish({ status, errorCode: code, ...(deliveredText !== undefined ? { deliveredText } : {}) });
  }
}

/** A token count as an upstream should send it (a non-negative integer), else null. */
function tokenCount(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

export function completionText(c: ChatCompletion): string {
  const m = c.choices[0]?.message;
  if (!m) return '';
  return (m.content ?? '') + (m.tool_calls ? JSON.stringify(m.tool_calls) : '');
}

/** Feed every chunk of an opened stream to `relay`, then free the model's slot. */
export async function relayStream(
  opened: StreamResult,
  relay: (c: ChatCompletionChunk) => Promise<void> | undefined,
): Promise<void> {
  try {
    // `relay` returns a promise only under backpressure: no extra await per chunk otherwise.
    let pending = relay(opened.first);
    if (pending) await pending;
    for (;;) {
      const n = await opened.rest.next();
      if (n.done) break;
      pending = relay(n.value);
      if (pending) await pending;
    }
  } finally {
    opened.release();
  }
}

/** Turn a cached completion into the chunks a stream would have sent. */
export function completionToChunks(c: ChatCompletion, id: string, created: number): ChatCompletionChunk[] {
  const choice = c.choices[0];
  const base = { id, object: 'chat.completion.chunk' as const, created, model: c.model };
  const chunks: ChatCompletionChunk[] = [];
  const msg = choice?.message;
  chunks.push({
    ...base,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null }],
  });
  const text = msg?.content ?? '';
  // Replay in modest pieces so clients see a real stream, not one giant delta.
  for (let i = 0; i < text.length; i += 64) {
    chunks.push({
      ...base,
      choices: [{ index: 0, delta: { content: text.slice(i, i + 64) }, finish_reason: null, logprobs: null }],
    });
  }
  if (msg?.tool_calls?.length) {
    chunks.push({
      ...base,
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: msg.tool_calls.map((t, index) => ({
              index,
              ...(t as object),
            })) as ChatCompletionChunk.Choice.Delta['tool_calls'],
          },
          finish_reason: null,
          logprobs: null,
        },
      ],
    });
  }
  chunks.push({
    ...base,
    choices: [{ index: 0, delta: {}, finish_reason: choice?.finish_reason ?? 'stop', logprobs: null }],
  });
  return chunks;
}

/** Rebuild a complete completion from streamed chunks (to cache a streamed answer). */
export class ChunkAssembler {
  content = '';
  private readonly toolCalls: Array<{
    id: string;
    type: 'function';
    function: { name: string; arguments: string };
  }> = [];
  finishReason: string | null = null;
  usage: Usage | null = null;
  id = '';
  created = 0;
  model = '';

  add(c: ChatCompletionChunk): void {
    if (!this.id) {
      this.id = c.id;
      this.created = c.created;
      this.model = c.model;
    }
    if (c.usage) this.usage = c.usage;
    const ch = c.choices[0];
    if (!ch) return;
    if (typeof ch.delta?.content === 'string') this.content += ch.delta.content;
    for (const t of ch.delta?.tool_calls ?? []) {
      let slot = this.toolCalls[t.index];
      if (!slot) {
        slot = { id: t.id ?? '', type: 'function', function: { name: '', arguments: '' } };
        this.toolCalls[t.index] = slot;
      }
      if (t.id) slot.id = t.id;
      if (t.function?.name) slot.function.name += t.function.name;
      if (t.function?.arguments) slot.function.arguments += t.function.arguments;
    }
    if (ch.finish_reason) this.finishReason = ch.finish_reason;
  }

  /** Text delivered so far (content + tool call arguments), for estimating usage. */
  deliveredText(): string {
    return this.toolCalls.length ? this.content + JSON.stringify(this.toolCalls) : this.content;
  }

  completion(): ChatCompletion {
    return {
      id: this.id,
      object: 'chat.completion',
      created: this.created,
      model: this.model,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: this.content || (this.toolCalls.length ? null : ''),
            refusal: null,
            ...(this.toolCalls.length ? { tool_calls: this.toolCalls.filter(Boolean) } : {}),
          },
          finish_reason: (this.finishReason ?? 'stop') as ChatCompletion.Choice['finish_reason'],
          logprobs: null,
        },
      ],
      ...(this.usage ? { usage: this.usage } : {}),
    };
  }
}

/** Entry point: validate-free (the caller validated), prepares and creates a call. */
export class ChatService {
  constructor(readonly deps: ChatServiceDeps) {}

  begin(principal: Principal, body: ChatRequest, opts: CallOptions): ChatCall {
    const prepared = prepareRequest(this.deps.config, this.deps.router, principal, body);
    const decision = this.deps.cache
      ? this.deps.cache.decide(prepared.body, principal.owner, opts.cacheControl)
      : ({ cacheable: false, reason: 'disabled' } as const);
    return new ChatCall(this.deps, principal, prepared, opts, decision);
  }
}
