import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EmbeddingsService } from '../embeddings/embeddings-service';
import { embeddingsRequestSchema, validateEmbeddingsRequest } from '../embeddings/validate';
import { ClientAbortError } from '../errors';
import { embeddingsResponseSchema, METERED_HEADERS } from './api-schemas';
import { clientSignal } from './context';
import type { RouteDoc } from './openapi';
import { formatCost, noteCall } from './request-log';

/** `POST /v1/embeddings` (and `/api/v1/embeddings`): OpenAI's shape, metered like chat. */
export function registerEmbeddingsRoutes(
  app: FastifyInstance,
  opts: { embeddings: EmbeddingsService; logContent: boolean },
): void {
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const body = validateEmbeddingsRequest(req.body);
    const ac = clientSignal(req, reply);
    const call = opts.embeddings.begin(req.principal!, body, {
      requestId: req.id,
      signal: ac.signal,
      cacheControl: req.headers['cache-control'],
      source: 'sync',
    });
    req.facts.model = call.modelId;
    req.facts.stream = false;
    await call.admit();
    req.facts.cache = call.cacheStatus;
    reply.headers(call.headers());
    try {
      const out = await call.run();
      const s = noteCall(req, call);
      reply.header('x-tollgate-cost-usd', formatCost(s?.costUsd ?? 0));
      if (opts.logContent)
        req.facts.content = { prompt: body.input, completion: `${out.data.length} embeddings` };
      return out;
    } catch (err) {
      noteCall(req, call);
      if (err instanceof ClientAbortError) {
        req.facts.errorCode = 'client_closed';
        return reply.code(499).send();
      }
      throw err;
    }
  };
  const doc: RouteDoc = {
    summary: 'Create embeddings',
    description:
      'OpenAI-compatible. Metered like chat (admission on input tokens, usage rows, cost at ' +
      '`pricing.input`). Cached per input item: `x-tollgate-cache: HIT` when every item came from the ' +
      'cache; `Cache-Control: no-store` bypasses it.',
    tags: ['Embeddings'],
    body: embeddingsRequestSchema,
    headers: { 'Cache-Control': '`no-store` bypasses the embeddings cache' },
    responses: {
      200: {
        description: 'The embeddings, in input order',
        schema: embeddingsResponseSchema,
        headers: METERED_HEADERS,
      },
    },
  };
  for (const url of ['/v1/embeddings', '/api/v1/embeddings']) app.post(url, { config: { doc } }, handler);
}
