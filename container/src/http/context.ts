import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../keys/key-store';

/** Per-request facts gathered on the way, for the one log line and the metrics. */
export interface RequestFacts {
  model?: string | undefined;
  tokensIn?: number | undefined;
  tokensOut?: number | undefined;
  costUsd?: number | undefined;
  cache?: 'HIT' | 'MISS' | 'BYPASS' | undefined;
  ttftMs?: number | undefined;
  stream?: boolean | undefined;
  errorCode?: string | undefined;
  /** Set once the request was logged (hijacked streams log themselves). */
  logged?: boolean;
  content?: { prompt: unknown; completion: unknown } | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    facts: RequestFacts;
  }
  interface FastifyContextConfig {
    /** Who may call the route. @default 'user' */
    auth?: 'user' | 'admin' | 'none';
  }
}

/**
 * An AbortSignal that fires when the client goes away before the response finished. The
 * response's 'close' (not the request's) is what tells a disconnect from a finished body.
 */
export function clientSignal(req: FastifyRequest, reply: FastifyReply): AbortController {
  const ac = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) ac.abort();
  };
  reply.raw.once('close', onClose);
  // Not `req.destroyed`: a request is destroyed once its body was read, connection or not.
  if (req.raw.socket?.destroyed) ac.abort();
  return ac;
}
