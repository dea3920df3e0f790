import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePlugin } from '../app';
import { ClientAbortError, NotFoundError } from '../errors';
import { assistantReplySchema, deletedHistorySchema, historySchema } from '../http/api-schemas';
import { clientSignal } from '../http/context';
import type { RouteDoc } from '../http/openapi';
import { formatCost, noteCall } from '../http/request-log';
import { relaySse, type SseRoute } from '../http/sse-relay';
import type { Telemetry } from '../telemetry/telemetry';
import {
  type AssistantReply,
  AssistantService,
  type AssistantSettings,
  type AssistantTurn,
} from './assistant-service';
import { ConversationStore } from './conversation-store';
import { assistantRequestSchema, parseAssistantRequest, parseUserId } from './validate';

/** Options of {@link registerAssistantHttp}. */
export interface AssistantRoutesOptions {
  assistant: AssistantService;
  telemetry: Telemetry;
  /** `: ping` comments while the first token is slow. */
  pingIntervalMs: number;
  logContent: boolean;
}

// The original tutorial's paths, and the /v1 ones with their /api/v1 twins (every /v1 path is).
const CHAT_PATHS = ['/api/v1/chat', '/v1/assistant/chat', '/api/v1/assistant/chat'];
// Wildcards, not `:user_id`: Fastify refuses parameters over 100 characters (414), and a
// user_id may have 128. The wildcard takes anything, so parseUserId is the only gate.
const HISTORY_PATHS = ['/api/v1/chat/history/*', '/v1/assistant/history/*', '/api/v1/assistant/history/*'];

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
    if (input.stream) {
      return relaySse(req, reply, turn.call, ac, streamTurn(turn), {
        telemetry: opts.telemetry,
        pingIntervalMs: opts.pingIntervalMs,
        logContent: opts.logContent,
      });
    }

    reply.headers(turn.call.headers());
    try {
      const r = await turn.complete();
      noteCall(req, turn.call);
      reply.header('x-tollgate-cost-usd', formatCost(r.summary.costUsd));
      if (opts.logContent) req.facts.content = { prompt: turn.call.body.messages, completion: r.response };
      return replyBody(r);
    } catch (err) {
      // The call recorded its usage itself; this only reads its summary for the log line.
      noteCall(req, turn.call);
      if (err instanceof ClientAbortError) {
        req.facts.errorCode = 'client_closed';
        return reply.code(499).send();
      }
      throw err;
    }
  };
  const chatDoc: RouteDoc = {
    summary: 'Ask the support assistant',
    description:
      "One message of a customer's conversation: the assistant answers with the stored history " +
      '(owner-scoped, bounded) as context; limits, usage and cost apply as for any completion. With ' +
      '`stream: true`: `data: {"delta":"..."}` events, then `data: {<the reply>}`, then `data: [DONE]`.',
    tags: ['Assistant'],
    body: assistantRequestSchema,
    responses: { 200: { description: 'The reply (or SSE with stream: true)', schema: assistantReplySchema } },
  };
  for (const url of CHAT_PATHS) app.post(url, { config: { doc: chatDoc } }, chat);

  for (const url of HISTORY_PATHS) {
    const path = url.replace('*', '{user_id}');
    const params = { user_id: 'The end user (1-128 of A-Za-z0-9._@-)' };
    const getDoc: RouteDoc = {
      summary: "A user's stored conversation",
      tags: ['Assistant'],
      path,
      params,
      responses: { 200: { description: 'The history, oldest first', schema: historySchema } },
    };
    const deleteDoc: RouteDoc = {
      summary: "Erase a user's conversation",
      tags: ['Assistant'],
      path,
      params,
      responses: { 200: { description: 'Erased', schema: deletedHistorySchema } },
    };
    app.get(url, { config: { doc: getDoc } }, async (req) => {
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
    app.delete(url, { config: { doc: deleteDoc } }, async (req) => {
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

/**
 * SSE: `data: {"delta":"..."}` per piece of text, then `data: {<the JSON reply>}` once the turn
 * is stored, then `data: [DONE]`. A failure before any byte is a plain JSON error with its
 * status; after that, a `data: {"error":{...}}` event and no `[DONE]`.
 */
function streamTurn(turn: AssistantTurn): SseRoute {
  let text = '';
  return {
    delivered: () => text,
    content: () => ({ prompt: turn.call.body.messages, completion: text }),
    async produce(sse) {
      const r = await turn.stream((delta) => {
        text += delta;
        return sse.data({ delta });
      });
      await sse.data(replyBody(r));
    },
  };
}
