/**
 * Request validation with zod schemas (the same schemas the OpenAPI document is generated from),
 * answered as OpenAI does: one 400 naming the first bad field in `param` (`input[3]`,
 * `messages[0].role`), with a message that says what was expected.
 */
import type { z } from 'zod';
import { BadRequestError } from './errors';

/** `a.b[2].c` from a zod issue path. */
export function paramOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

/** The JSON type of a value, for error messages. */
export function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Parse `body` or throw the 400 for its first problem. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, what: string): z.output<S> {
  if (body === undefined || body === null || body === '')
    throw new BadRequestError(`The request body is empty; send a JSON object (${what}).`);
  if (typeof body !== 'object' || Array.isArray(body))
    throw new BadRequestError(`The request body must be a JSON object, got ${jsonType(body)}.`);
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0] as z.core.$ZodIssue;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] as string;
    const param = paramOf([...issue.path, key]);
    throw new BadRequestError(`Unrecognized request argument supplied: ${param}`, {
      param,
      code: 'unknown_parameter',
    });
  }
  const param = paramOf(issue.path);
  throw new BadRequestError(
    issue.message.includes(`'${param}'`) ? issue.message : `'${param}': ${issue.message}`,
    {
      param: param || null,
    },
  );
}
