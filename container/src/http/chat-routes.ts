import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  type ChatCall,
  type ChatService,
  ChunkAssembler,
  completionToChunks,
  relayStream,
} from '../chat/chat-service';
import { validateChatRequest } from '../chat/validate';
import { ApiError, ClientAbortError, InternalServerError } from '../errors';
import type { StreamResult } from '../providers/router';
import type { Telemetry } from '../telemetry/telemetry';
import type { ChatCompletion, ChatCompletionChunk, Usage } from '../wire/chat';
import { clientSignal } from './context';
import { SseWriter } from './sse';

export interface ChatRoutesOptions {
  chat: ChatService;
  telemetry: Telemetry;
  pingIntervalMs: number;
  logContent: boolean;
}

/** `POST /v1/chat/completions` (and `/api/v1/chat/completions`). */
export function registerChatRoutes(app: FastifyInstance, opts: ChatRoutesOptions): void {
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
    if (body.stream === true) return streamCompletion(req, reply, call, hit, ac, opts);

    reply.headers(call.headers());
    try {
      const completion = await call.complete(hit);
      const s = summarize(req, call);
      reply.header(
        'x-tollgate-cost-usd',
        (s?.costUsd ?? 0).toFixed(9).replace(/0+$/, '').replace(/\.$/, '.0'),
      );
      if (opts.logContent)
        req.facts.content = { prompt: call.body.messages, completion: completion.choices[0]?.message };
      return completion;
    } catch (err) {
      summarize(req, call);
      if (err instanceof ClientAbortError) {
        // Nobody is listening; 499 (nginx's "client closed request") marks it in logs and metrics.
        req.facts.errorCode = 'client_closed';
        return reply.code(499).send();
      }
      throw err;
    }
  };
  for (const url of ['/v1/chat/completions', '/api/v1/chat/completions']) app.post(url, handler);
}

/** Copy the finished call's figures onto the request for its log line. */
function summarize(req: FastifyRequest, call: ChatCall) {
  const s = call.summary;
  if (!s) return null;
  req.facts.tokensIn = s.promptTokens;
  req.facts.tokensOut = s.completionTokens;
  req.facts.costUsd = s.costUsd;
  req.facts.ttftMs = s.ttftMs;
  return s;
}

function errorPayload(err: unknown): ApiError {
  return err instanceof ApiError ? err : new InternalServerError();
}

/**
 * Relay an SSE stream: chunks go out as they arrive, `: ping` comments while the first token is
 * slow, the usage chunk only when asked, `[DONE]` only after a clean end; a failure after the
 * headers went out is an error event the SDK raises as an APIError.
 */
async function streamCompletion(
  req: FastifyRequest,
  reply: FastifyReply,
  call: ChatCall,
  hit: ChatCompletion | null,
  ac: AbortController,
  opts: ChatRoutesOptions,
): Promise<FastifyReply> {
  const wantUsage = call.body.stream_options?.include_usage === true;
  reply.hijack();
  const sse = new SseWriter(reply.raw, () => ({ 'x-request-id': req.id, ...call.headers() }));
  const id = `chatcmpl-${req.id}`;
  const created = Math.floor(Date.now() / 1000);
  const assembled = new ChunkAssembler();
  let status = 200;
  let errorCode: string | undefined;
  let usage: Usage | null = null;

  const relay = (c: ChatCompletionChunk): Promise<void> | undefined => {
    // Same id/created on every chunk, and the public model id, whatever the upstream sent; the
    // assembled answer (cached for later requests) takes them from the rewritten chunk.
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

  try {
    if (hit) {
      for (const c of completionToChunks(hit, id, created)) {
        c.model = call.modelId;
        call.markFirstToken();
        await sse.data(c);
      }
      usage = hit.usage ?? null;
      call.finish({ status: 200, usage, cached: true });
    } else {
      const ping = setInterval(() => sse.ping(), opts.pingIntervalMs);
      let opened: StreamResult;
      try {
        opened = await call.openStream();
      } finally {
        clearInterval(ping);
      }
      const stopIfGone = (): undefined => {
        if (sse.closed) throw new ClientAbortError();
        return undefined;
      };
      await relayStream(opened, (c) => {
        const written = relay(c);
        return written ? written.then(stopIfGone) : stopIfGone();
      });
      if (ac.signal.aborted) throw new ClientAbortError();
      const completion = assembled.completion();
      call.finish({ status: 200, usage, deliveredText: assembled.deliveredText() });
      await call.remember(completion);
    }
    const s = call.finish({ status: 200 });
    if (wantUsage) {
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
    sse.end(true);
  } catch (err) {
    if (err instanceof ClientAbortError || ac.signal.aborted) {
      status = 499;
      errorCode = 'client_closed';
      call.fail(new ClientAbortError(), assembled.deliveredText());
      ac.abort();
      reply.raw.destroy();
    } else {
      const e = errorPayload(err);
      status = e.status;
      errorCode = e.code ?? e.type;
      call.fail(err, assembled.deliveredText());
      if (!(err instanceof ApiError))
        opts.telemetry.logger.error('stream failed', { requestId: req.id, error: err as Error });
      await sse.fail(e, { 'x-request-id': req.id, ...call.headers() });
    }
  }
  const s = call.finish({ status });
  opts.telemetry.request({
    requestId: req.id,
    method: req.method,
    route: req.routeOptions.url ?? req.url,
    status,
    latencyMs: Math.round(performance.now() - call.startedAt),
    model: call.modelId,
    ttftMs: s.ttftMs,
    tokensIn: s.promptTokens,
    tokensOut: s.completionTokens,
    costUsd: s.costUsd,
    cache: call.cacheStatus,
    stream: true,
    keyId: call.principal.keyId,
    owner: call.principal.owner,
    errorCode,
    content: opts.logContent ? { prompt: call.body.messages, completion: assembled.content } : undefined,
  });
  req.facts.logged = true;
  return reply;
}
