import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePlugin } from '../app';
import type { CallSummary } from '../chat/chat-service';
import { ApiError, ClientAbortError, InternalServerError, NotFoundError } from '../errors';
import { clientSignal } from '../http/context';
import { SseWriter } from '../http/sse';
import type { Telemetry } from '../telemetry/telemetry';
import {
  type AssistantReply,
  AssistantService,
  type AssistantSettings,
  type AssistantTurn,
} from './assistant-service';
import { ConversationStore } from './conversation-store';
import { parseAssistantRequest, parseUserId } from './validate';

/** Options of {@link registerAssistantHttp}. */
export interface AssistantRoutesOptions {
  assistant: AssistantService;
  telemetry: Telemetry;
  /** `: ping` comments while the first token is slow. */
  pingIntervalMs: number;
  logContent: boolean;
}

const CHAT_PATHS = ['/api/v1/chat', '/v1/assistant/chat'];
// Wildcards, not `:user_id`: Fastify refuses parameters over 100 characters (414), and a
// user_id may have 128. The wildcard takes anything, so parseUserId is the only gate.
const HISTORY_PATHS = ['/api/v1/chat/history/*', '/v1/assistant/history/*'];

/**
 * The customer-support assistant: `POST /api/v1/chat` (and `/v1/assistant/chat`), and
 * `GET` / `DELETE /api/v1/chat/history/{user_id}` (and `/v1/assistant/history/{user_id}`).
 * Conversations live in the conversations table, scoped to the API key's owner.
 */
export const registerAssistantRoutes: RoutePlugin = (app, rt) => {
  // Typed as the settings interface so that fields the config schema may add later
  // (retentionDays) are read without a cast.
  const settings: AssistantSettings = rt.config.assistant;
  const store = new ConversationStore({
    doc: rt.doc,
    table: rt.env.tables.conversations,
    historyLimit: settings.historyLimit,
    retentionDays: settings.retentionDays,
  });
  const assistant = new AssistantService({
    chat: rt.chat,
    router: rt.router,
    config: rt.config,
    store,
    settings,
    telemetry: rt.telemetry,
  });
  registerAssistantHttp(app, {
    assistant,
    telemetry: rt.telemetry,
    pingIntervalMs: rt.env.pingIntervalMs ?? rt.config.streaming.pingIntervalMs,
    logContent: rt.env.logContent,
  });
};

/** The HTTP side of the assistant over a ready {@link AssistantService}. */
export function registerAssistantHttp(app: FastifyInstance, opts: AssistantRoutesOptions): void {
  const { assistant } = opts;

  const chat = async (req: FastifyRequest, reply: FastifyReply) => {
    const input = parseAssistantRequest(req.body, { maxMessageChars: assistant.maxMessageChars });
    const principal = req.principal!;
    const ac = clientSignal(req, reply);
    req.facts.stream = input.stream;
    const turn = await assistant.begin(principal, input, { requestId: req.id, signal: ac.signal });
    req.facts.model = turn.call.modelId;
    await turn.admit();
    req.facts.cache = turn.call.cacheStatus;
    if (input.stream) return streamTurn(req, reply, turn, ac, opts);

    reply.headers(turn.call.headers());
    try {
      const r = await turn.complete();
      summarize(req, r.summary);
      reply.header('x-tollgate-cost-usd', formatCost(r.summary.costUsd));
      if (opts.logContent) req.facts.content = { prompt: turn.call.body.messages, completion: r.response };
      return replyBody(r);
    } catch (err) {
      // Usage was recorded by the call; this only reads its summary for the log line.
      summarize(req, turn.call.finish({ status: 500, errorCode: 'internal_error' }));
      if (err instanceof ClientAbortError) {
        req.facts.errorCode = 'client_closed';
        return reply.code(499).send();
      }
      throw err;
    }
  };
  for (const url of CHAT_PATHS) app.post(url, chat);

  for (const url of HISTORY_PATHS) {
    app.get(url, async (req) => {
      const userId = pathUserId(req);
      const c = await assistant.history(req.principal!.owner, userId);
      if (!c) throw notFound(userId);
      return {
        user_id: userId,
        conversation_id: c.conversationId,
        messages: c.messages.map((m) => ({ role: m.role, content: m.content, timestamp: m.timestamp })),
        message_count: c.messages.length,
      };
    });
    app.delete(url, async (req) => {
      const userId = pathUserId(req);
      if (!(await assistant.erase(req.principal!.owner, userId))) throw notFound(userId);
      return { user_id: userId, deleted: true };
    });
  }
}

function pathUserId(req: FastifyRequest): string {
  return parseUserId((req.params as Record<string, string | undefined>)['*']);
}

/** Same answer for "never existed" and "another owner's": no way to probe other owners' ids. */
function notFound(userId: string): NotFoundError {
  return new NotFoundError(`No conversation history for user_id '${userId}'.`, {
    param: 'user_id',
    code: 'conversation_not_found',
  });
}

function replyBody(r: AssistantReply) {
  return {
    response: r.response,
    user_id: r.userId,
    conversation_id: r.conversationId,
    model: r.model,
    timestamp: r.timestamp,
    usage: r.usage,
  };
}

function summarize(req: FastifyRequest, s: CallSummary): void {
  req.facts.tokensIn = s.promptTokens;
  req.facts.tokensOut = s.completionTokens;
  req.facts.costUsd = s.costUsd;
  req.facts.ttftMs = s.ttftMs;
}

function formatCost(usd: number): string {
  return usd.toFixed(9).replace(/0+$/, '').replace(/\.$/, '.0');
}

/**
 * SSE: `data: {"delta":"..."}` per piece of text, then `data: {<the JSON reply>}` once the turn
 * is stored, then `data: [DONE]`. A failure before any byte is a plain JSON error with its
 * status; after that, a `data: {"error":{...}}` event and no `[DONE]`.
 */
async function streamTurn(
  req: FastifyRequest,
  reply: FastifyReply,
  turn: AssistantTurn,
  ac: AbortController,
  opts: AssistantRoutesOptions,
): Promise<FastifyReply> {
  reply.hijack();
  const sse = new SseWriter(reply.raw, () => ({ 'x-request-id': req.id, ...turn.call.headers() }));
  let status = 200;
  let errorCode: string | undefined;
  let text = '';
  let ping: NodeJS.Timeout | undefined = setInterval(() => sse.ping(), opts.pingIntervalMs);
  const stopPing = () => {
    clearInterval(ping);
    ping = undefined;
  };
  try {
    const r = await turn.stream((delta) => {
      stopPing();
      text += delta;
      return sse.data({ delta });
    });
    stopPing();
    await sse.data(replyBody(r));
    sse.end(true);
  } catch (err) {
    stopPing();
    if (err instanceof ClientAbortError || ac.signal.aborted) {
      status = 499;
      errorCode = 'client_closed';
      ac.abort();
      reply.raw.destroy();
    } else {
      const e = err instanceof ApiError ? err : new InternalServerError();
      status = e.status;
      errorCode = e.code ?? e.type;
      if (!(err instanceof ApiError))
        opts.telemetry.logger.error('assistant stream failed', { requestId: req.id, error: err as Error });
      await sse.fail(e, { 'x-request-id': req.id, ...turn.call.headers() });
    }
  }
  const s = turn.call.finish({ status });
  opts.telemetry.request({
    requestId: req.id,
    method: req.method,
    route: req.routeOptions.url ?? req.url,
    status,
    latencyMs: Math.round(performance.now() - turn.call.startedAt),
    model: turn.call.modelId,
    ttftMs: s.ttftMs,
    tokensIn: s.promptTokens,
    tokensOut: s.completionTokens,
    costUsd: s.costUsd,
    cache: turn.call.cacheStatus,
    stream: true,
    keyId: turn.call.principal.keyId,
    owner: turn.call.principal.owner,
    errorCode,
    content: opts.logContent ? { prompt: turn.call.body.messages, completion: text } : undefined,
  });
  req.facts.logged = true;
  return reply;
}
