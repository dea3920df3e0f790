import type { CacheDecision, ResponseCache } from '../cache/response-cache';
import type { ServiceConfig } from '../config/service-config';
import type { Principal } from '../keys/key-store';
import {
  type CacheStatus,
  type CallSummary,
  type MeterDeps,
  MeteredCall,
  type MeteredCallOptions,
  tokenCount,
} from '../metering/metered-call';
import type { ModelRouter, StreamResult } from '../providers/router';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, Usage } from '../wire/chat';
import { type Prepared, prepareRequest } from './prepare';

export type { CacheStatus, CallSummary };

export interface ChatServiceDeps extends MeterDeps {
  config: ServiceConfig;
  router: ModelRouter;
  cache: ResponseCache | null;
}

/** Per-call settings of a chat call. */
export type CallOptions = MeteredCallOptions;

/**
 * One chat call: the metered call plus how chat asks the router (complete or stream, with
 * fallbacks) and what its cache stores (whole completions). HTTP-free: the chat route, the
 * Responses API, the async worker and the assistant all drive calls through this.
 */
export class ChatCall extends MeteredCall {
  constructor(
    private readonly deps: ChatServiceDeps,
    principal: Principal,
    readonly prepared: Prepared,
    opts: CallOptions,
    private readonly cacheDecision: CacheDecision,
  ) {
    super(
      deps,
      principal,
      {
        endpoint: 'chat',
        model: prepared.entry.config,
        stream: prepared.body.stream === true,
        promptTokens: prepared.promptTokens,
        reserveTokens: prepared.reserveTokens,
        reserveCostUsd: prepared.reserveCostUsd,
      },
      opts,
    );
  }

  get body(): ChatRequest {
    return this.prepared.body;
  }

  /** Admission and cache lookup, concurrently (one Redis round trip of latency). */
  override admit(): Promise<ChatCompletion | null> {
    const d = this.cacheDecision;
    const cache = this.deps.cache;
    return this.admitWith(d.cacheable && cache ? cache.get(d.key) : null);
  }

  /** Store a fresh completion in the cache when the request was cacheable. */
  async remember(completion: ChatCompletion): Promise<void> {
    const d = this.cacheDecision;
    if (d.cacheable && this.cacheStatus === 'MISS' && this.deps.cache)
      await this.deps.cache.set(d.key, completion);
  }

  /** Non-streaming: cache hit, or the model through the router; the usage record included. */
  async complete(hit: ChatCompletion | null): Promise<ChatCompletion> {
    if (hit) {
      const c = { ...hit, id: `chatcmpl-${this.opts.requestId}`, created: Math.floor(Date.now() / 1000) };
      this.finish({ status: 200, usage: hit.usage ?? null, cached: true });
      return c;
    }
    try {
      const { completion, model } = await this.deps.router.complete(
        this.modelId,
        this.body,
        this.opts.signal,
      );
      this.servedBy(model.config);
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
  async openStream(): Promise<StreamResult> {
    const opened = await this.deps.router.stream(this.modelId, this.body, this.opts.signal);
    this.servedBy(opened.model.config);
    return opened;
  }
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
