import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePlugin } from '../app';
import { ChunkAssembler, completionToChunks, relayStream } from '../chat/chat-service';
import { type ApiError, BadRequestError, ClientAbortError, NotFoundError } from '../errors';
import { replayEvents } from '../responses/events';
import { INCLUDABLES, parseResponsesRequest } from '../responses/schema';
import { ResponsesService, type ResponseTurn } from '../responses/service';
import { ResponseStore } from '../responses/store';
import { asResponsesError } from '../responses/translate';
import type { Telemetry } from '../telemetry/telemetry';
import type { ChatCompletion, ChatCompletionChunk, Usage } from '../wire/chat';
import type { ResponseStreamEvent } from '../wire/responses';
import { clientSignal } from './context';
import { formatCost, noteCall } from './request-log';
import { SseWriter } from './sse';
import { relaySse, type SseRelayOptions, type SseRoute } from './sse-relay';

/** Options of {@link registerResponsesHttp}. */
export interface ResponsesRoutesOptions {
  responses: ResponsesService;
  telemetry: Telemetry;
  pingIntervalMs: number;
  logContent: boolean;
}

const PREFIXES = ['/v1', '/api/v1'];

/**
 * The Responses API: `POST /v1/responses`, `GET` / `DELETE /v1/responses/{id}`,
 * `GET /v1/responses/{id}/input_items` (each also under `/api/v1`), over the chat path of
 * every provider family. Stored responses live in the responses table, scoped to the key's owner.
 */
export const registerResponsesRoutes: RoutePlugin = (app, rt) => {
  const store = new ResponseStore({
    doc: rt.doc,
    table: rt.env.tables.responses,
    retentionDays: rt.config.responses.retentionDays,
  });
  registerResponsesHttp(app, {
    responses: new ResponsesService({ chat: rt.chat, store, telemetry: rt.telemetry }),
    telemetry: rt.telemetry,
    pingIntervalMs: rt.env.pingIntervalMs ?? rt.config.streaming.pingIntervalMs,
    logContent: rt.env.logContent,
  });
};

type IdRequest = FastifyRequest<{ Params: { id: string }; Querystring: Record<string, unknown> }>;

/** The HTTP side over a ready {@link ResponsesService}. */
export function registerResponsesHttp(app: FastifyInstance, opts: ResponsesRoutesOptions): void {
  const { responses } = opts;
  const relay: SseRelayOptions = {
    telemetry: opts.telemetry,
    pingIntervalMs: opts.pingIntervalMs,
    logContent: opts.logContent,
  };

  const create = async (req: FastifyRequest, reply: FastifyReply) => {
    try {
      return await createResponse(req, reply);
    } catch (err) {
      throw asResponsesError(err);
    }
  };
  const createResponse = async (req: FastifyRequest, reply: FastifyReply) => {
    const parsed = parseResponsesRequest(req.body);
    const principal = req.principal!;
    const ac = clientSignal(req, reply);
    req.facts.stream = parsed.stream;
    const turn = await responses.begin(principal, parsed, {
      requestId: req.id,
      signal: ac.signal,
      cacheControl: req.headers['cache-control'],
      source: 'sync',
      endpoint: 'responses',
    });
    const { call } = turn;
    req.facts.model = call.modelId;
    // A refusal's headers (Retry-After, rate limits) are set by the app's error handler.
    const hit = await call.admit();
    req.facts.cache = call.cacheStatus;
    if (parsed.stream) return relaySse(req, reply, call, ac, streamResponse(turn, hit, ac), relay);

    reply.headers(call.headers());
    try {
      const completion = await call.complete(hit);
      const response = turn.fromCompletion(completion, call.summary);
      await turn.save(response);
      const s = noteCall(req, call);
      reply.header('x-tollgate-cost-usd', formatCost(s?.costUsd ?? 0));
      if (opts.logContent) req.facts.content = { prompt: call.body.messages, completion: response.output };
      return response;
    } catch (err) {
      noteCall(req, call);
      if (err instanceof ClientAbortError) {
        req.facts.errorCode = 'client_closed';
        return reply.code(499).send();
      }
      throw err;
    }
  };

  const retrieve = async (req: IdRequest, reply: FastifyReply) => {
    const q = req.query;
    optionalIncludes(q);
    const stream = queryBool(q, 'stream');
    const startingAfter = queryInt(q, 'starting_after', 0, Number.MAX_SAFE_INTEGER);
    const stored = await responses.get(req.principal!.owner, req.params.id);
    if (!stored) throw responseNotFound(req.params.id);
    req.facts.model = stored.response.model;
    if (!stream) return stored.response;
    // Replayed as the events of a stream, from after `starting_after` when given.
    const events = replayEvents(stored.response).filter(
      (e) => startingAfter === undefined || e.sequence_number > startingAfter,
    );
    // Headers hooks set on the reply (CORS) go out too: a hijacked reply writes the raw response.
    const headers: Record<string, string> = { 'x-request-id': req.id };
    for (const [k, v] of Object.entries(reply.getHeaders()))
      if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : String(v);
    reply.hijack();
    const sse = new SseWriter(reply.raw, () => headers);
    await sendEvents(sse, events);
    sse.end(false);
    return reply;
  };

  const remove = async (req: IdRequest) => {
    const { id } = req.params;
    if (!(await responses.delete(req.principal!.owner, id))) throw responseNotFound(id);
    return { id, object: 'response', deleted: true };
  };

  const inputItems = async (req: IdRequest) => {
    const q = req.query;
    optionalIncludes(q);
    const limit = queryInt(q, 'limit', 1, 100) ?? 20;
    const order = queryString(q, 'order') ?? 'desc';
    if (order !== 'asc' && order !== 'desc')
      throw new BadRequestError(
        `Invalid value for 'order': '${order}'. Supported values are: 'asc', 'desc'.`,
        {
          param: 'order',
        },
      );
    const after = queryString(q, 'after');
    const before = queryString(q, 'before');
    const stored = await responses.get(req.principal!.owner, req.params.id);
    if (!stored) throw responseNotFound(req.params.id);
    let items = order === 'asc' ? stored.context : [...stored.context].reverse();
    for (const [name, cursor] of [
      ['after', after],
      ['before', before],
    ] as const) {
      if (cursor === undefined) continue;
      const at = items.findIndex((i) => i.id === cursor);
      if (at < 0)
        throw new BadRequestError(`No input item with id '${cursor}' in this response.`, { param: name });
      items = name === 'after' ? items.slice(at + 1) : items.slice(0, at);
    }
    const page = before !== undefined && after === undefined ? items.slice(-limit) : items.slice(0, limit);
    return {
      object: 'list',
      data: page,
      first_id: page[0]?.id ?? null,
      last_id: page[page.length - 1]?.id ?? null,
      has_more: page.length < items.length,
    };
  };

  for (const p of PREFIXES) {
    app.post(`${p}/responses`, create);
    app.get(`${p}/responses/:id`, retrieve);
    app.delete(`${p}/responses/:id`, remove);
    app.get(`${p}/responses/:id/input_items`, inputItems);
  }
}

/** Someone else's response answers exactly like a missing or expired one. */
function responseNotFound(id: string): NotFoundError {
  return new NotFoundError(`Response with id '${id}' not found.`, {
    param: 'response_id',
    code: 'response_not_found',
  });
}

function queryValue(q: Record<string, unknown>, name: string): unknown {
  return q[name] ?? q[`${name}[]`];
}

function queryString(q: Record<string, unknown>, name: string): string | undefined {
  const v = queryValue(q, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadRequestError(`'${name}' must be given once.`, { param: name });
  return v;
}

function queryInt(q: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const v = queryString(q, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max)
    throw new BadRequestError(`Invalid '${name}': expected an integer from ${min} to ${max}, got '${v}'.`, {
      param: name,
    });
  return n;
}

function queryBool(q: Record<string, unknown>, name: string): boolean {
  const v = queryString(q, name);
  if (v === undefined) return false;
  if (v !== 'true' && v !== 'false')
    throw new BadRequestError(`Invalid '${name}': expected true or false, got '${v}'.`, { param: name });
  return v === 'true';
}

/** `include` is accepted with OpenAI's values and ignored (nothing it adds exists here). */
function optionalIncludes(q: Record<string, unknown>): void {
  const v = queryValue(q, 'include');
  if (v === undefined) return;
  const values = Array.isArray(v) ? v : [v];
  for (const x of values)
    if (!(INCLUDABLES as readonly unknown[]).includes(x))
      throw new BadRequestError(
        `Invalid value for 'include': '${String(x)}'. Supported values are: ${INCLUDABLES.map((i) => `'${i}'`).join(', ')}.`,
        { param: 'include' },
      );
}

/** The `code` of a failed Response (OpenAI's set: rate limits, else a server error). */
function failureCode(e: ApiError): string {
  return e.status === 429 ? 'rate_limit_exceeded' : 'server_error';
}

/** Write events in order; a promise only when the socket asks to wait (backpressure). */
function sendEvents(sse: SseWriter, events: ResponseStreamEvent[]): Promise<void> | undefined {
  let pending: Promise<void> | undefined;
  for (const e of events) pending = sse.event(e.type, e) ?? pending;
  return pending;
}

/**
 * A response as named SSE events, for the shared relay (lazy headers, pings, 499 on disconnect
 * with usage, the one log record). `response.created` goes out once the upstream accepted, so a
 * failure before it (after retries and fallbacks) is still a plain JSON error with its status;
 * after it, a failure is `response.failed`; after `: ping` comments only, an `error` event. The
 * response is stored before `response.completed` goes out, so a client that chains at once
 * finds it. No `[DONE]`: Responses streams end with their lifecycle event.
 */
function streamResponse(turn: ResponseTurn, hit: ChatCompletion | null, ac: AbortController): SseRoute {
  const { call } = turn;
  const events = turn.events();
  const assembled = new ChunkAssembler();
  let started = false;
  let usage: Usage | null = null;

  return {
    done: false,
    delivered: () => assembled.deliveredText(),
    content: () => ({ prompt: call.body.messages, completion: events.items }),
    async produce(sse: SseWriter): Promise<void> {
      const stopIfGone = (): undefined => {
        if (sse.closed) throw new ClientAbortError();
        return undefined;
      };
      const relay = (c: ChatCompletionChunk): Promise<void> | undefined => {
        assembled.add(c);
        if (c.usage) usage = c.usage;
        if (c.choices.length > 0) call.markFirstToken();
        const written = sendEvents(sse, events.chunk(c));
        return written ? written.then(stopIfGone) : stopIfGone();
      };
      if (hit) {
        started = true;
        await sendEvents(sse, events.start());
        const created = Math.floor(Date.now() / 1000);
        for (const c of completionToChunks(hit, `chatcmpl-${call.opts.requestId}`, created)) await relay(c);
        usage = hit.usage ?? null;
        call.finish({ status: 200, usage, cached: true });
      } else {
        const opened = await call.openStream().catch((err) => {
          throw asResponsesError(err);
        });
        // The upstream accepted: from here on the client sees the response being made.
        started = true;
        await sendEvents(sse, events.start());
        await relayStream(opened, relay);
        if (ac.signal.aborted) throw new ClientAbortError();
        call.finish({ status: 200, usage, deliveredText: assembled.deliveredText() });
        await call.remember(assembled.completion());
      }
      const done = events.complete(turn.usage(usage, call.finish({ status: 200 })));
      await turn.save(done.response);
      await sendEvents(sse, done.events);
    },
    async failAfterStart(sse: SseWriter, e: ApiError): Promise<void> {
      if (started && !events.done) {
        const failed = events.fail(
          { code: failureCode(e), message: e.message },
          turn.usage(usage, call.summary),
        );
        await turn.save(failed.response);
        await sendEvents(sse, failed.events);
      } else {
        await sendEvents(sse, [
          events.errorEvent({ code: e.code ?? e.type, message: e.message, param: e.param }),
        ]);
      }
      sse.end(false);
    },
  };
}
