import type { CallOptions, CallSummary, ChatCall, ChatService } from '../chat/chat-service';
import type { Principal } from '../keys/key-store';
import type { Telemetry } from '../telemetry/telemetry';
import type { ChatCompletion, Usage } from '../wire/chat';
import type { ContextItem, OutputItem, Response, ResponseUsage } from '../wire/responses';
import { buildContext, type StoredTurn } from './context';
import { ResponseEventStream } from './events';
import { ItemIds, newResponseId } from './ids';
import type { ResponsesRequest } from './schema';
import type { ResponseStore } from './store';
import {
  buildResponse,
  completionOutput,
  type ResponseBase,
  responseUsage,
  statusOf,
  takesReasoningEffort,
  toChatRequest,
} from './translate';

export interface ResponsesServiceDeps {
  chat: ChatService;
  store: ResponseStore;
  telemetry: Telemetry;
}

/**
 * The Responses API over the chat path: a request's conversation is resolved from the caller's
 * stored responses, translated to a chat request, and metered as one chat call (keys, limits,
 * reservation, cache, usage row, cost, fallbacks, concurrency). HTTP-free.
 */
export class ResponsesService {
  constructor(readonly deps: ResponsesServiceDeps) {}

  /** The caller's stored response (null: none, someone else's, expired). */
  get(owner: string, id: string) {
    return this.deps.store.get(owner, id);
  }

  delete(owner: string, id: string): Promise<boolean> {
    return this.deps.store.delete(owner, id);
  }

  /**
   * Resolve the conversation (404 for a previous response or referenced item the caller does not
   * have) and open the metered chat call. Nothing is admitted or billed until `call.admit()`.
   */
  async begin(principal: Principal, req: ResponsesRequest, opts: CallOptions): Promise<ResponseTurn> {
    const id = newResponseId();
    const ids = new ItemIds(id);
    const load = async (rid: string): Promise<StoredTurn | null> => {
      const r = await this.deps.store.get(principal.owner, rid);
      return r && { context: r.context, output: r.response.output as OutputItem[] };
    };
    const context = await buildContext(req, ids, load);
    // `auto` is routed inside the chat call, so its effort is ignored (the family is not known yet).
    const provider = this.deps.chat.deps.router.get(req.model)?.config.provider;
    const body = toChatRequest(req, context, { reasoningEffort: takesReasoningEffort(provider) });
    const call = this.deps.chat.begin(principal, body, opts);
    return new ResponseTurn(this.deps, principal, req, context, ids, call, {
      id,
      created_at: Math.floor(Date.now() / 1000),
      model: call.modelId,
      req,
    });
  }
}

/** One response being made: its metered chat call, ids, conversation and storage. */
export class ResponseTurn {
  constructor(
    private readonly deps: ResponsesServiceDeps,
    readonly principal: Principal,
    readonly req: ResponsesRequest,
    /** What the model sees (earlier turns and this input), as stored for `input_items`. */
    readonly context: ContextItem[],
    private readonly ids: ItemIds,
    readonly call: ChatCall,
    readonly base: ResponseBase,
  ) {}

  get id(): string {
    return this.base.id;
  }

  /** The model that answers (a fallback, maybe): its public id goes on the response, as on chat. */
  servedBy(modelId: string): void {
    this.base.model = modelId;
  }

  /** The Response for a finished (non-streamed) chat completion. */
  fromCompletion(c: ChatCompletion, summary: CallSummary | null): Response {
    if (summary) this.servedBy(summary.model);
    const output = completionOutput(c, this.ids);
    const { status, incomplete_details } = statusOf(c.choices[0]?.finish_reason);
    return buildResponse(this.base, {
      status,
      output,
      usage: this.usage(c.usage, summary),
      incomplete_details,
    });
  }

  /** Responses usage from the upstream's, falling back on what the call counted. */
  usage(u: Usage | null | undefined, summary: CallSummary | null): ResponseUsage {
    return responseUsage(u, { input: summary?.promptTokens ?? 0, output: summary?.completionTokens ?? 0 });
  }

  /** The event builder for a streamed response. */
  events(): ResponseEventStream {
    return new ResponseEventStream(
      (s) => buildResponse(this.base, s),
      (prefix) => this.ids.take(prefix),
    );
  }

  /**
   * Keep the response when the request asked to (`store`, default true). A storage failure does
   * not take the answer away from the client: it is logged, and the id will not resolve.
   */
  async save(response: Response): Promise<boolean> {
    if (!this.req.store) return false;
    try {
      await this.deps.store.put(this.principal.owner, { response, context: this.context });
      return true;
    } catch (err) {
      this.deps.telemetry.logger.error('storing a response failed', {
        responseId: response.id,
        requestId: this.call.opts.requestId,
        error: err as Error,
      });
      return false;
    }
  }
}
