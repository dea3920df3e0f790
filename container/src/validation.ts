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

/**
 * For a union that failed inside the one branch whose type matched (an array of parts with a bad
 * part), that branch's issue, with the full path; else the union's own issue.
 */
function innermost(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string } {
  if (issue.code !== 'invalid_union' || !('errors' in issue) || issue.errors.length === 0) return issue;
  const deep = issue.errors.filter((branch) => branch.some((i) => i.path.length > 0));
  if (deep.length !== 1) return issue;
  const inner = (deep[0] as z.core.$ZodIssue[])[0] as z.core.$ZodIssue;
  const nested = innermost(inner);
  return { path: [...issue.path, ...nested.path], message: nested.message };
}

/** Parse a query string's values or throw the 400 for its first problem. */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  return parseBody(schema, query ?? {}, 'query');
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
  // A union that failed inside the one branch whose type matched names the innermost field.
  const deepest = innermost(issue);
  const param = paramOf(deepest.path);
  // Messages written as sentences stand alone; fragments (`must be ...`) get the field's name.
  const m = deepest.message;
  const message = /^[A-Z']/.test(m) || !param ? m : `'${param}' ${m}`;
  throw new BadRequestError(message, { param: param || null });
}
