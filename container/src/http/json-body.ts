import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError, BadRequestError } from '../errors';

/**
 * Deepest nesting of arrays and objects a request body may have. Real bodies (tool schemas
 * included) stay far below it; a body nested thousands deep would overflow the stack in every
 * recursive step after parsing (canonical cache keys, token counts, JSON.stringify for the
 * upstream or the queue) and answer 500.
 */
export const MAX_JSON_DEPTH = 128;

/** Whether `text` (JSON) nests arrays/objects deeper than `max`. One pass, strings skipped. */
export function nestsDeeperThan(text: string, max: number): boolean {
  // Each level needs at least one character: a short body cannot be too deep.
  if (text.length <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * JSON is the only body type (text/plain and everything else is 415), uncompressed (a
 * gzipped body would otherwise read as invalid JSON), at most MAX_JSON_DEPTH levels deep.
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string' },
    (req: FastifyRequest, body: string | Buffer, done: (err: Error | null, value?: unknown) => void) => {
      const encoding = req.headers['content-encoding']?.trim().toLowerCase();
      if (encoding && encoding !== 'identity') {
        done(
          new ApiError(
            415,
            `Content-Encoding '${encoding}' is not supported; send the JSON body uncompressed.`,
            { type: 'invalid_request_error', code: 'unsupported_content_encoding' },
          ),
        );
        return;
      }
      const text = typeof body === 'string' ? body : body.toString('utf8');
      if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
        done(
          new BadRequestError(
            `The JSON body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep.`,
            {
              code: 'invalid_json',
            },
          ),
        );
        return;
      }
      parse(req, text, done);
    },
  );
}
