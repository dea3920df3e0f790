import {
  type CallSummary,
  type ChatCall,
  type ChatService,
  ChunkAssembler,
  relayStream,
} from '../chat/chat-service';
import { isAllowed, routeAuto } from '../chat/prepare';
import type { ServiceConfig } from '../config/service-config';
import {
  ApiError,
  BadRequestError,
  ClientAbortError,
  ConfigError,
  PermissionDeniedError,
  ServiceUnavailableError,
} from '../errors';
import type { Principal } from '../keys/key-store';
import type { ModelEntry, ModelRouter } from '../providers/router';
import type { Telemetry } from '../telemetry/telemetry';
import { countMessageTokens } from '../tokens/count';
import type { ChatCompletionChunk, ChatMessage } from '../wire/chat';
import {
  type Conversation,
  type ConversationStore,
  conversationIdFor,
  type StoredMessage,
} from './conversation-store';
import { historyBudget, selectHistory, storedMessageTokens, toChatMessage } from './history';
import { DEFAULT_SYSTEM_PROMPT } from './system-prompt';

/** The `assistant` section of the service config. */
export interface AssistantSettings {
  /** @default DEFAULT_SYSTEM_PROMPT (the TechCorp persona) */
  systemPrompt?: string | undefined;
  /** A catalogue id or `auto`. @default the first catalogue model the key may use */
  model?: string | undefined;
  /** Messages kept in the stored history. */
  historyLimit: number;
  /** Longest accepted `message`, in characters. */
  maxMessageChars: number;
  /** `max_tokens` of every assistant call (the tier's cap still applies). */
  maxTokens: number;
  /** Days a conversation is kept after its last message; 0 or absent = until deleted. */
  retentionDays?: number | undefined;
}

/** What {@link AssistantService} runs on (the runtime's parts plus its own store). */
export interface AssistantServiceDeps {
  chat: ChatService;
  router: ModelRouter;
  config: ServiceConfig;
  store: ConversationStore;
  settings: AssistantSettings;
  telemetry: Telemetry;
}

/** Token usage of one assistant turn, in OpenAI's field names. */
export interface AssistantUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** A turn that was answered and stored. */
export interface AssistantReply {
  response: string;
  userId: string;
  conversationId: string;
  model: string;
  /** ISO 8601 time of the stored reply. */
  timestamp: string;
  usage: AssistantUsage;
  summary: CallSummary;
}

/**
 * One message to the assistant: the prompt is built and the chat call begun; the caller then
 * admits it and either completes or streams it. History is written only once the model has
 * answered in full, so a failed or abandoned call leaves the conversation as it was.
 */
export class AssistantTurn {
  constructor(
    /** The underlying chat call (limits, usage, headers). */
    readonly call: ChatCall,
    readonly userId: string,
    readonly conversationId: string,
    private readonly userMessage: StoredMessage,
    private readonly save: (messages: StoredMessage[]) => Promise<unknown>,
  ) {}

  /**
   * Rate limits and budget. Throws the limiter's 429 (with its headers) or 503. The response
   * cache is bypassed: a reply depends on the stored history, not only on this message.
   */
  async admit(): Promise<void> {
    await this.call.admit();
  }

  /** Ask the model for the whole reply, then store the turn. */
  async complete(): Promise<AssistantReply> {
    // complete() records the call's usage itself, on success and on failure.
    const completion = await this.call.complete(null);
    return this.store(completion.choices[0]?.message.content ?? '');
  }

  /**
   * Stream the reply: `onDelta` gets each piece of text as it arrives (awaiting it applies the
   * client's backpressure). The turn is stored after the last chunk. A client that went away
   * (the call's signal) ends the stream with {@link ClientAbortError} and stores nothing.
   */
  async stream(onDelta: (text: string) => Promise<void> | undefined): Promise<AssistantReply> {
    const signal = this.call.opts.signal;
    const assembled = new ChunkAssembler();
    const relay = async (c: ChatCompletionChunk): Promise<void> => {
      assembled.add(c);
      if (c.choices.length > 0) this.call.markFirstToken();
      const text = c.choices[0]?.delta?.content;
      if (typeof text === 'string' && text !== '') await onDelta(text);
      if (signal.aborted) throw new ClientAbortError();
    };
    try {
      await relayStream(await this.call.openStream(), relay);
      if (signal.aborted) throw new ClientAbortError();
    } catch (err) {
      // However the upstream reacted to the abort, a client that left is a 499, not an upstream error.
      const cause = signal.aborted ? new ClientAbortError() : err;
      this.call.fail(cause, assembled.deliveredText());
      throw cause;
    }
    this.call.finish({ status: 200, usage: assembled.usage, deliveredText: assembled.deliveredText() });
    return this.store(assembled.content);
  }

  private async store(text: string): Promise<AssistantReply> {
    const summary = this.call.finish({ status: 200 });
    const reply: StoredMessage = {
      role: 'assistant',
      content: text,
      timestamp: new Date().toISOString(),
      tokens: countMessageTokens({ role: 'assistant', content: text }),
    };
    await this.save([this.userMessage, reply]);
    return {
      response: text,
      userId: this.userId,
      conversationId: this.conversationId,
      model: this.call.modelId,
      timestamp: reply.timestamp,
      usage: {
        prompt_tokens: summary.promptTokens,
        completion_tokens: summary.completionTokens,
        total_tokens: summary.promptTokens + summary.completionTokens,
      },
      summary,
    };
  }
}

/**
 * The customer-support assistant, HTTP-free: builds each prompt from the configured system
 * prompt, the stored history that fits the model's context window and the new message, drives
 * the chat call (so limits, usage and cost apply as for any request) and stores the turn.
 */
export class AssistantService {
  readonly systemPrompt: string;

  constructor(private readonly deps: AssistantServiceDeps) {
    this.systemPrompt = deps.settings.systemPrompt ?? DEFAULT_SYSTEM_PROMPT;
    const model = deps.settings.model;
    // Checked at start: a typo here would otherwise surface as a 404 on every customer message.
    if (model !== undefined && model !== 'auto' && !deps.router.get(model)) {
      throw new ConfigError(`Invalid service config:\n  - assistant.model: unknown model '${model}'`);
    }
  }

  /** Longest accepted message, for request validation. */
  get maxMessageChars(): number {
    return this.deps.settings.maxMessageChars;
  }

  /**
   * Build the prompt for one message and begin its chat call (not yet admitted).
   * @throws BadRequestError (`param: 'message'`) when the message cannot fit the context window.
   */
  async begin(
    principal: Principal,
    input: { message: string; userId: string; stream: boolean },
    opts: { requestId: string; signal: AbortSignal },
  ): Promise<AssistantTurn> {
    const receivedAt = new Date().toISOString();
    const { settings, chat } = this.deps;
    const system: ChatMessage = { role: 'system', content: this.systemPrompt };
    const user: ChatMessage = { role: 'user', content: input.message };
    const conversation = await this.guard(() => this.deps.store.get(principal.owner, input.userId));
    const stored = conversation?.messages ?? [];
    const entry = this.resolveModel(principal, system, stored, user);
    const completionTokens = Math.min(settings.maxTokens, principal.maxTokensCap ?? Number.POSITIVE_INFINITY);
    const budget = historyBudget({
      contextWindow: entry.config.contextWindow,
      completionTokens,
      system,
      user,
    });
    if (budget < 0) {
      throw new BadRequestError(
        `'message' is too long for the model's context window of ${entry.config.contextWindow} tokens (with the system prompt and ${completionTokens} tokens reserved for the reply).`,
        { param: 'message', code: 'context_length_exceeded' },
      );
    }
    const history = selectHistory(stored, budget);
    const call = chat.begin(
      principal,
      {
        model: entry.config.id,
        messages: [system, ...history.map(toChatMessage), user],
        max_tokens: settings.maxTokens,
        ...(input.stream ? { stream: true } : {}),
      },
      { requestId: opts.requestId, signal: opts.signal, source: 'assistant', cacheControl: 'no-store' },
    );
    const userMessage: StoredMessage = {
      role: 'user',
      content: input.message,
      timestamp: receivedAt,
      tokens: countMessageTokens(user),
    };
    return new AssistantTurn(
      call,
      input.userId,
      conversationIdFor(principal.owner, input.userId),
      userMessage,
      (messages) => this.guard(() => this.deps.store.append(principal.owner, input.userId, messages)),
    );
  }

  /** The caller's stored conversation, or null (none, or another owner's). */
  history(owner: string, userId: string): Promise<Conversation | null> {
    return this.guard(() => this.deps.store.get(owner, userId));
  }

  /** Erase a conversation; false when there was none for this owner. */
  erase(owner: string, userId: string): Promise<boolean> {
    return this.guard(() => this.deps.store.delete(owner, userId));
  }

  /** `assistant.model`, else the first catalogue model this key may use. */
  private resolveModel(
    principal: Principal,
    system: ChatMessage,
    stored: readonly StoredMessage[],
    user: ChatMessage,
  ): ModelEntry {
    const { router, config, settings } = this.deps;
    let id = settings.model;
    if (id === 'auto') {
      // Route on the whole conversation: its size is what the auto rules are about.
      const messages = [system, ...stored.map(toChatMessage), user];
      const tokens = stored.reduce((n, m) => n + storedMessageTokens(m), countMessageTokens(system));
      id = routeAuto(config, router, principal, messages, tokens + countMessageTokens(user) + 3);
    }
    if (id === undefined) {
      id = router.list().find((e) => e.config.endpoints.includes('chat') && isAllowed(principal, e.config.id))
        ?.config.id;
      if (id === undefined) {
        throw new PermissionDeniedError('No model is available to this API key.', {
          code: 'model_not_allowed',
        });
      }
    }
    return router.require(id, 'chat');
  }

  /** DynamoDB trouble is a 503 the client may retry, not an anonymous 500. */
  private async guard<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof ApiError) throw err;
      this.deps.telemetry.logger.error('conversation store failed', { error: err as Error });
      throw new ServiceUnavailableError('The conversation store is unavailable; try again shortly.', {
        code: 'conversation_store_unavailable',
        retryAfterSeconds: 1,
      });
    }
  }
}
