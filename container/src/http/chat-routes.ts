import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  type ChatCall,
  type ChatService,
  ChunkAssembler,
  completionToChunks,
  relayStream,
} from '../chat/chat-service';
import { chatRequestSchema } from '../chat/schema';
import { validateChatRequest } from '../chat/validate';
import { ClientAbortError } from '../errors';
import type { Telemetry } from '../telemetry/telemetry';
import type { ChatCompletion, ChatCompletionChunk, Usage } from '../wire/chat';
import { CHAT_STREAM_DESCRIPTION, chatCompletionSchema, METERED_HEADERS } from './api-schemas';
import { clientSignal } from './context';
import type { RouteDoc } from './openapi';
import { formatCost, noteCall } from './request-log';
import type { SseWriter } from './sse';
import { relaySse, type SseRelayOptions } from './sse-relay';

export interface ChatRoutesOptions {
  chat: ChatService;
  telemetry: Telemetry;
  pingIntervalMs: number;
  logContent: boolean;
}

/** `POST /v1/chat/completions` (and `/api/v1/chat/completions`). */
export function registerChatRoutes(app: FastifyInstance, opts: ChatRoutesOptions): void {
  const relay: SseRelayOptions = {
    telemetry: opts.telemetry,
    pingIntervalMs: opts.pingIntervalMs,
    logContent: opts.logContent,
  };
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const body = validateChatRequest(req.body);
    const principal = req.principal!;
    const ac = clientSignal(req, reply);
    const call = opts.chat.begin(principal, body, {
      requestId: req.id,
      signal: ac.signal,
      cacheControl: req.headers['cache-control'],
      source: 'sync',
    });
    req.facts.model = call.modelId;
    req.facts.stream = body.stream === true;
    // A refusal's headers (Retry-After, rate limits) are set by the app's error handler.
    const hit = await call.admit();
    req.facts.cache = call.cacheStatus;
    if (body.stream === true) return relaySse(req, reply, call, ac, streamCompletion(call, hit, ac), relay);

    reply.headers(call.headers());
    try {
      const completion = await call.complete(hit);
      const s = noteCall(req, call);
      reply.header('x-tollgate-cost-usd', formatCost(s?.costUsd ?? 0));
      if (opts.logContent)
        req.facts.content = { prompt: call.body.messages, completion: completion.choices[0]?.message };
      return completion;
    } catch (err) {
      noteCall(req, call);
      if (err instanceof ClientAbortError) {
        // Nobody is listening; 499 (nginx's "client closed request") marks it in logs and metrics.
        req.facts.errorCode = 'client_closed';
        return reply.code(499).send();
      }
      throw err;
    }
  };
  const doc: RouteDoc = {
    summary: 'Create a chat completion',
    description:
      'OpenAI-compatible. Admission (rate limits, token quotas, budget), the exact-match cache ' +
      '(`Cache-Control: no-store` bypasses it), fallbacks, retries and per-model concurrency apply. ' +
      '`model` may be `auto`.',
    tags: ['Chat'],
    body: chatRequestSchema,
    headers: { 'Cache-Control': '`no-store` bypasses the response cache' },
    responses: {
      200: {
        description: `A chat.completion. ${CHAT_STREAM_DESCRIPTION}`,
        schema: chatCompletionSchema,
        headers: METERED_HEADERS,
      },
      429: { description: 'A limit was hit (Retry-After says when to retry).' },
    },
  };
  for (const url of ['/v1/chat/completions', '/api/v1/chat/completions'])
    app.post(url, { config: { doc } }, handler);
}

/**
 * A chat completion as SSE chunks: relayed as they arrive with the same id, created and public
 * model on every chunk, the usage chunk only when asked (`stream_options.include_usage`), a
 * cache hit replayed as the chunks a stream would have sent.
 */
function streamCompletion(call: ChatCall, hit: ChatCompletion | null, ac: AbortController) {
  const wantUsage = call.body.stream_options?.include_usage === true;
  const id = `chatcmpl-${call.opts.requestId}`;
  const created = Math.floor(Date.now() / 1000);
  const assembled = new ChunkAssembler();
  let usage: Usage | null = null;

  const relay = (sse: SseWriter, c: ChatCompletionChunk): Promise<void> | undefined => {
    // The assembled answer (cached for later requests) takes id, created and model from the
    // rewritten chunk, whatever the upstream sent.
    c.id = id;
    c.created = created;
    c.model = call.modelId;
    assembled.add(c);
    if (c.usage) usage = c.usage;
    if (c.choices.length === 0 && c.usage) return undefined; // sent at the end, if asked
    // Upstream usage fields (often `null` on every chunk) only go out when the client asked.
    if (!wantUsage && c.usage !== undefined) c.usage = undefined;
    if (c.choices.length > 0) call.markFirstToken();
    return sse.data(c);
  };

  return {
    delivered: () => assembled.deliveredText(),
    content: () => ({ prompt: call.body.messages, completion: assembled.content }),
    async produce(sse: SseWriter): Promise<void> {
      if (hit) {
        for (const c of completionToChunks(hit, id, created)) {
          c.model = call.modelId;
          call.markFirstToken();
          await sse.data(c);
        }
        usage = hit.usage ?? null;
        call.finish({ status: 200, usage, cached: true });
      } else {
        const opened = await call.openStream();
        const stopIfGone = (): undefined => {
          if (sse.closed) throw new ClientAbortError();
          return undefined;
        };
        await relayStream(opened, (c) => {
          const written = relay(sse, c);
          return written ? written.then(stopIfGone) : stopIfGone();
        });
        if (ac.signal.aborted) throw new ClientAbortError();
        call.finish({ status: 200, usage, deliveredText: assembled.deliveredText() });
        await call.remember(assembled.completion());
      }
      if (wantUsage) {
        const s = call.finish({ status: 200 });
        const u: Usage = usage ?? {
          prompt_tokens: s.promptTokens,
          completion_tokens: s.completionTokens,
          total_tokens: s.promptTokens + s.completionTokens,
        };
        await sse.data({
          id,
          object: 'chat.completion.chunk',
          created,
          model: call.modelId,
          choices: [],
          usage: u,
        });
      }
    },
  };
}
