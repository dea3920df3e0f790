import type { FastifyRequest } from 'fastify';
import type { CallSummary, MeteredCall } from '../metering/metered-call';
import type { RequestRecord } from '../telemetry/telemetry';

/** Copy a finished call's figures onto the request, for its log line and metrics. */
export function noteCall(req: FastifyRequest, call: MeteredCall): CallSummary | null {
  const f = req.facts;
  f.model = call.summary?.model ?? call.modelId;
  f.cache = call.cacheStatus;
  const s = call.summary;
  if (s) {
    f.tokensIn = s.promptTokens;
    f.tokensOut = s.completionTokens;
    f.costUsd = s.costUsd;
    f.ttftMs = s.ttftMs;
  }
  return s;
}

/** The one request-log record of a request, from what the route gathered on the way. */
export function requestRecord(
  req: FastifyRequest,
  outcome: { status: number; latencyMs: number },
): RequestRecord {
  const f = req.facts;
  return {
    requestId: req.id,
    method: req.method,
    route: req.routeOptions.url ?? 'unknown',
    status: outcome.status,
    latencyMs: outcome.latencyMs,
    model: f.model,
    ttftMs: f.ttftMs,
    tokensIn: f.tokensIn,
    tokensOut: f.tokensOut,
    costUsd: f.costUsd,
    cache: f.cache,
    stream: f.stream,
    keyId: req.principal?.keyId,
    owner: req.principal?.owner,
    errorCode: f.errorCode,
    content: f.content,
  };
}

/** `x-tollgate-cost-usd`: the call's cost with up to nine decimals, never in exponent form. */
export function formatCost(usd: number): string {
  return usd.toFixed(9).replace(/0+$/, '').replace(/\.$/, '.0');
}
