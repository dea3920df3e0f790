import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, ClientAbortError, InternalServerError } from '../errors';
import type { MeteredCall } from '../metering/metered-call';
import type { Telemetry } from '../telemetry/telemetry';
import { noteCall, requestRecord } from './request-log';
import { SseWriter } from './sse';

function replyHeaders(reply: FastifyReply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(reply.getHeaders())) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

/** How one streaming route writes its answer; the relay does the rest. */
export interface SseRoute {
  /**
   * Write every event of the answer, finishing the call with its usage on success. Throws on
   * failure; a client that went away is a `ClientAbortError` (or the call's aborted signal).
   */
  produce(sse: SseWriter): Promise<void>;
  /** What reached the client so far: counted for the usage of a stream cut short. */
  delivered(): string;
  /** `data: [DONE]` after a clean end (the chat-shaped streams). @default true */
  done?: boolean;
  /**
   * How a failure after the first byte is told to the client. @default an error data event
   * (`data: {"error":{...}}`, no `[DONE]`), which the openai SDK raises as an APIError
   */
  failAfterStart?(sse: SseWriter, e: ApiError): Promise<void>;
  /** Prompt and answer for the log line, when TOLLGATE_LOG_CONTENT is on. */
  content?(): { prompt: unknown; completion: unknown };
}

export interface SseRelayOptions {
  telemetry: Telemetry;
  pingIntervalMs: number;
  logContent: boolean;
}

/**
 * The SSE relay every streaming route uses: headers go out with the first event (so a failure
 * before it is a plain JSON error with its status), `: ping` while the first event is slow, a
 * client disconnect aborts the upstream and records usage as 499, a failure mid-stream becomes
 * an error event with the text already sent kept, and the request gets its one log record.
 */
export async function relaySse(
  req: FastifyRequest,
  reply: FastifyReply,
  call: MeteredCall,
  ac: AbortController,
  route: SseRoute,
  o: SseRelayOptions,
): Promise<FastifyReply> {
  reply.hijack();
  // Headers hooks set on the reply (CORS, connection: close while draining) go out too: a
  // hijacked reply writes the raw response itself.
  const headers = () => ({ ...replyHeaders(reply), 'x-request-id': req.id, ...call.headers() });
  const sse = new SseWriter(reply.raw, headers);
  const stopPings = sse.keepAlive(o.pingIntervalMs);
  let status = 200;
  try {
    await route.produce(sse);
    sse.end(route.done ?? true);
  } catch (err) {
    if (err instanceof ClientAbortError || ac.signal.aborted) {
      // Nobody is listening; 499 (nginx's "client closed request") marks it in logs and metrics.
      status = 499;
      req.facts.errorCode = 'client_closed';
      call.fail(new ClientAbortError(), route.delivered());
      ac.abort();
      reply.raw.destroy();
    } else {
      const e = err instanceof ApiError ? err : new InternalServerError();
      status = e.status;
      req.facts.errorCode = e.code ?? e.type;
      call.fail(err, route.delivered());
      if (!(err instanceof ApiError))
        o.telemetry.logger.error('stream failed', { requestId: req.id, error: err as Error });
      if (sse.headersSent && route.failAfterStart) await route.failAfterStart(sse, e);
      else await sse.fail(e, headers());
    }
  } finally {
    stopPings();
  }
  // Usage is recorded once whatever happened (a no-op when the route finished the call).
  call.finish({ status });
  noteCall(req, call);
  req.facts.stream = true;
  if (o.logContent && route.content) req.facts.content = route.content();
  o.telemetry.request(
    requestRecord(req, { status, latencyMs: Math.round(performance.now() - call.startedAt) }),
  );
  req.facts.logged = true;
  return reply;
}
