import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ChunkAssembler, completionToChunks, relayStream } from '../chat/chat-service';
import { type ApiError, BadRequestError, ClientAbortError, NotFoundError } from '../errors';
import {
  deletedResponseSchema,
  inputItemListSchema,
  RESPONSES_STREAM_DESCRIPTION,
  responseObjectSchema,
} from '../responses/api-schemas';
import { replayEvents } from '../responses/events';
import {
  inputItemsQuerySchema,
  parseQueryWith,
  parseResponsesRequest,
  type ResponsesRequest,
  responseCreateSchema,
  retrieveQuerySchema,
} from '../responses/schema';
import { ResponsesService, type ResponseTurn } from '../responses/service';
import { ResponseStore } from '../responses/store';
import { asResponsesError } from '../responses/translate';
import type { Runtime } from '../runtime';
import type { Telemetry } from '../telemetry/telemetry';
import type { ChatCompletion, ChatCompletionChunk, Usage } from '../wire/chat';
import type { ResponseStreamEvent } from '../wire/responses';
import { METERED_HEADERS } from './api-schemas';
import { clientSignal } from './context';
import type { RouteDoc } from './openapi';
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
 * A route plugin (`RoutePlugin` of app.ts, which this file does not import: http/ stays below it).
 */
export function registerResponsesRoutes(app: FastifyInstance, rt: Runtime): void {
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
}

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
    const parsed = parseResponsesRequest(req.body);
    try {
      return await createResponse(req, reply, parsed);
    } catch (err) {
      // Refusals from the chat path (context overflow, a provider's own checks) name chat fields.
      throw asResponsesError(err);
    }
  };
  const createResponse = async (req: FastifyRequest, reply: FastifyReply, parsed: ResponsesRequest) => {
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
    const q = parseQueryWith(retrieveQuerySchema, req.query);
    const stored = await responses.get(req.principal!.owner, req.params.id);
    if (!stored) throw responseNotFound(req.params.id);
    req.facts.model = stored.response.model;
    if (q.stream !== 'true') return stored.response;
    // Replayed as the events of a stream, from after `starting_after` when given.
    const after = q.starting_after;
    const events = replayEvents(stored.response).filter(
      (e) => after === undefined || e.sequence_number > after,
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
    const q = parseQueryWith(inputItemsQuerySchema, req.query);
    const limit = q.limit ?? 20;
    const order = q.order ?? 'desc';
    const { after, before } = q;
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

  const tags = ['Responses'];
  const params = { id: 'The response id (resp_...)' };
  const createDoc: RouteDoc = {
    summary: 'Create a model response',
    description:
      "OpenAI's Responses API, served on the chat path of every provider family: the same keys, " +
      'limits, reservations, cache, usage rows, cost, fallbacks and concurrency as chat ' +
      'completions. Function tools only (built-in tools, `background`, `conversation` and ' +
      'reusable prompts are refused with a 400 naming the field). With `store` (default true) the ' +
      'response is kept for `previous_response_id`, `item_reference` and the GET routes.',
    tags,
    body: responseCreateSchema,
    headers: { 'Cache-Control': '`no-store` bypasses the response cache' },
    responses: {
      200: {
        description: `A response object. ${RESPONSES_STREAM_DESCRIPTION}`,
        schema: responseObjectSchema,
        headers: METERED_HEADERS,
      },
      404: { description: 'previous_response_id or an item_reference is not one of your stored responses' },
      429: { description: 'A limit was hit (Retry-After says when to retry).' },
    },
  };
  const retrieveDoc: RouteDoc = {
    summary: 'Retrieve a stored response',
    description: "Your own stored responses only; another key owner's, a deleted or an expired one is 404.",
    tags,
    params,
    query: retrieveQuerySchema,
    responses: {
      200: {
        description: 'The response object, or with `stream=true` its events (text/event-stream)',
        schema: responseObjectSchema,
      },
    },
  };
  const deleteDoc: RouteDoc = {
    summary: 'Delete a stored response',
    tags,
    params,
    responses: { 200: { description: 'Deleted', schema: deletedResponseSchema } },
  };
  const itemsDoc: RouteDoc = {
    summary: "List a stored response's input items",
    description:
      'Everything the model saw for it (earlier turns of a previous_response_id chain included), with ids.',
    tags,
    params,
    query: inputItemsQuerySchema,
    responses: { 200: { description: 'A page of items', schema: inputItemListSchema } },
  };
  for (const p of PREFIXES) {
    app.post(`${p}/responses`, { config: { doc: createDoc } }, create);
    app.get(`${p}/responses/:id`, { config: { doc: retrieveDoc } }, retrieve);
    app.delete(`${p}/responses/:id`, { config: { doc: deleteDoc } }, remove);
    app.get(`${p}/responses/:id/input_items`, { config: { doc: itemsDoc } }, inputItems);
  }
}

/** Someone else's response answers exactly like a missing or expired one. */
function responseNotFound(id: string): NotFoundError {
  return new NotFoundError(`Response with id '${id}' not found.`, {
    param: 'response_id',
    code: 'response_not_found',
  });
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
        turn.servedBy(opened.model.config.id);
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
