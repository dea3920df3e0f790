/**
 * `POST /v1/responses` request schema: what Tollgate accepts, as zod schemas (the OpenAPI
 * document can be generated from them), plus the checks zod cannot express: features that
 * change the answer and cannot be honoured on a chat path are refused with a 400 naming the
 * field, never dropped.
 */
import { z } from 'zod';
import { BadRequestError } from '../errors';
import { paramOf, jsonType as typeName } from '../validation';

const ITEM_STATUS = ['in_progress', 'completed', 'incomplete'] as const;
const itemStatus = z.enum(ITEM_STATUS).nullish();

/** Reasoning efforts OpenAI defines (`reasoning.effort`), passed on as `reasoning_effort`. */
export const REASONING_EFFORTS = ['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max'] as const;
export type ReasoningEffort = (typeof REASONING_EFFORTS)[number];

/** `include` values OpenAI defines; none of them adds anything on a chat path, so all are ignored. */
export const INCLUDABLES = [
  'file_search_call.results',
  'web_search_call.results',
  'web_search_call.action.sources',
  'message.input_image.image_url',
  'computer_call_output.output.image_url',
  'code_interpreter_call.outputs',
  'reasoning.encrypted_content',
  'message.output_text.logprobs',
] as const;

const inputTextPart = z.object({ type: z.literal('input_text'), text: z.string() }).loose();
const inputImagePart = z
  .object({
    type: z.literal('input_image'),
    /** A `data:` URI, or an http(s) URL the provider fetches (as on the chat path). */
    image_url: z.string().nullish(),
    file_id: z.string().nullish(),
    detail: z.enum(['low', 'high', 'auto', 'original']).nullish(),
  })
  .loose();
const inputFilePart = z.object({ type: z.literal('input_file') }).loose();
const outputTextPart = z
  .object({
    type: z.literal('output_text'),
    text: z.string(),
    annotations: z.array(z.unknown()).nullish(),
  })
  .loose();
const refusalPart = z.object({ type: z.literal('refusal'), refusal: z.string() }).loose();
const contentPart = z.discriminatedUnion('type', [
  inputTextPart,
  inputImagePart,
  inputFilePart,
  outputTextPart,
  refusalPart,
]);

const messageItem = z
  .object({
    type: z.literal('message'),
    role: z.enum(['user', 'assistant', 'system', 'developer']),
    content: z.union([z.string(), z.array(contentPart)]),
    id: z.string().min(1).nullish(),
    status: itemStatus,
  })
  .loose();
const functionCallItem = z
  .object({
    type: z.literal('function_call'),
    call_id: z.string().min(1),
    name: z.string().min(1),
    arguments: z.string(),
    id: z.string().min(1).nullish(),
    status: itemStatus,
  })
  .loose();
const functionCallOutputItem = z
  .object({
    type: z.literal('function_call_output'),
    call_id: z.string().min(1),
    output: z.union([z.string(), z.array(contentPart)]),
    id: z.string().min(1).nullish(),
    status: itemStatus,
  })
  .loose();
const itemReference = z.object({ type: z.literal('item_reference'), id: z.string().min(1) }).loose();
/** Reasoning items of an earlier OpenAI response: accepted and skipped (model-internal state). */
const reasoningItem = z.object({ type: z.literal('reasoning') }).loose();

/** Items may omit `type`: a message when they have a `role`, else an item reference. */
function defaultItemType(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  const o = v as Record<string, unknown>;
  if (o.type !== undefined && o.type !== null) return v;
  if (o.role !== undefined) return { ...o, type: 'message' };
  if (o.id !== undefined) return { ...o, type: 'item_reference' };
  return v;
}

export const inputItemSchema = z
  .preprocess(
    defaultItemType,
    z.discriminatedUnion('type', [
      messageItem,
      functionCallItem,
      functionCallOutputItem,
      itemReference,
      reasoningItem,
    ]),
  )
  .meta({
    description:
      'An input item. `type` may be omitted: a message when the item has `role`, an item_reference when it has only `id`. Reasoning items are accepted and skipped.',
  });

const functionTool = z
  .object({
    type: z.literal('function'),
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9_-]+$/, 'must contain only letters, digits, underscores and dashes'),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
    /** Tool search (OpenAI-only): refused when true. */
    defer_loading: z.boolean().nullish(),
    /** Asynchronous tool calls (OpenAI-only): refused when true. */
    async: z.boolean().nullish(),
  })
  .loose();
const toolSchema = z.discriminatedUnion('type', [functionTool]);

const namedFunction = z.object({ type: z.literal('function'), name: z.string().min(1) }).loose();
const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.discriminatedUnion('type', [
    namedFunction,
    z
      .object({
        type: z.literal('allowed_tools'),
        mode: z.enum(['auto', 'required']),
        tools: z.array(namedFunction).min(1),
      })
      .loose(),
  ]),
]);

const textFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }).loose(),
  z.object({ type: z.literal('json_object') }).loose(),
  z
    .object({
      type: z.literal('json_schema'),
      name: z
        .string()
        .min(1)
        .max(64)
        .regex(/^[A-Za-z0-9_-]+$/, 'must contain only letters, digits, underscores and dashes'),
      schema: z.record(z.string(), z.unknown()),
      description: z.string().nullish(),
      strict: z.boolean().nullish(),
    })
    .loose(),
]);

const anyObject = z.object({}).loose();

/** The request body of `POST /v1/responses`. Unknown top-level fields are refused by name. */
export const responseCreateSchema = z.strictObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(inputItemSchema)]).optional(),
  instructions: z.string().nullish(),
  tools: z.array(toolSchema).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z
    .object({ format: textFormatSchema.nullish(), verbosity: z.enum(['low', 'medium', 'high']).nullish() })
    .loose()
    .nullish(),
  max_output_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullish(),
  user: z.string().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_obfuscation: z.boolean().nullish() }).loose().nullish(),
  store: z.boolean().nullish(),
  previous_response_id: z.string().min(1).nullish(),
  reasoning: z
    .object({
      effort: z.enum(REASONING_EFFORTS).nullish(),
      summary: z.enum(['auto', 'concise', 'detailed']).nullish(),
      generate_summary: z.enum(['auto', 'concise', 'detailed']).nullish(),
      mode: z.string().nullish(),
      context: z.string().nullish(),
    })
    .loose()
    .nullish(),
  include: z.array(z.enum(INCLUDABLES)).nullish(),
  // Hints that do not change the answer: accepted, ignored (see docs/responses.md).
  service_tier: z.enum(['auto', 'default', 'flex', 'scale', 'priority', 'fast', 'ultrafast']).nullish(),
  prompt_cache_key: z.string().nullish(),
  prompt_cache_retention: z.enum(['in_memory', '24h']).nullish(),
  prompt_cache_options: anyObject.nullish(),
  safety_identifier: z.string().nullish(),
  truncation: z.enum(['auto', 'disabled']).nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  max_tool_calls: z.number().int().min(1).nullish(),
  access_programs: anyObject.nullish(),
  image: anyObject.nullish(),
  // Behaviour Tollgate cannot honour: accepted only when unset (null, false, empty).
  background: z.boolean().nullish(),
  background_options: anyObject.nullish(),
  conversation: z.union([z.string(), anyObject]).nullish(),
  prompt: anyObject.nullish(),
  context_management: z.array(anyObject).nullish(),
  moderation: anyObject.nullish(),
});

export type ResponseCreateBody = z.infer<typeof responseCreateSchema>;
type RawInputItem = z.infer<typeof inputItemSchema>;

// ----------------------------------------------------------------------------------------------
// Normalized request

/** A content part as it is stored and translated. */
export type InputPart =
  | { type: 'input_text'; text: string }
  | { type: 'input_image'; image_url: string; detail: 'low' | 'high' | 'auto' | 'original' };
export type AssistantPart =
  | { type: 'output_text'; text: string; annotations: unknown[] }
  | { type: 'refusal'; refusal: string };

/** An input item after validation, before ids are assigned and references resolved. */
export type DraftItem =
  | {
      type: 'message';
      role: 'user' | 'system' | 'developer';
      content: InputPart[];
      id: string | null;
    }
  | {
      type: 'message';
      role: 'assistant';
      content: AssistantPart[];
      id: string | null;
      status: (typeof ITEM_STATUS)[number];
    }
  | { type: 'function_call'; call_id: string; name: string; arguments: string; id: string | null }
  | { type: 'function_call_output'; call_id: string; output: string; id: string | null }
  | { type: 'item_reference'; id: string };

/** A draft item with where it was in `input` (for error messages naming the field). */
export interface DraftEntry {
  item: DraftItem;
  /** `input[i]`. */
  param: string;
}

/** A function tool as echoed on the response and translated for the chat path. */
export interface FunctionToolSpec {
  type: 'function';
  name: string;
  description: string | null;
  parameters: Record<string, unknown> | null;
  strict: boolean | null;
}

export type ToolChoice =
  | 'none'
  | 'auto'
  | 'required'
  | { type: 'function'; name: string }
  | { type: 'allowed_tools'; mode: 'auto' | 'required'; tools: Array<{ type: 'function'; name: string }> };

export type TextFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | {
      type: 'json_schema';
      name: string;
      schema: Record<string, unknown>;
      description?: string;
      strict: boolean | null;
    };

/** A validated `POST /v1/responses` body with defaults applied. */
export interface ResponsesRequest {
  model: string;
  input: DraftEntry[];
  instructions: string | null;
  tools: FunctionToolSpec[];
  toolChoice: ToolChoice;
  parallelToolCalls: boolean;
  text: { format: TextFormat; verbosity: 'low' | 'medium' | 'high' };
  maxOutputTokens: number | null;
  temperature: number | null;
  topP: number | null;
  metadata: Record<string, string>;
  user: string | null;
  stream: boolean;
  store: boolean;
  previousResponseId: string | null;
  reasoning: { effort: ReasoningEffort | null; summary: 'auto' | 'concise' | 'detailed' | null };
  /** Accepted hints echoed on the response object (OpenAI echoes them). */
  echo: {
    prompt_cache_key: string | null;
    safety_identifier: string | null;
    truncation: 'auto' | 'disabled';
    top_logprobs: number | null;
    max_tool_calls: number | null;
  };
}

const MAX_METADATA_KEYS = 16;

function fail(param: string, message: string, code = 'invalid_value'): never {
  throw new BadRequestError(message, { param, code });
}

function unsupported(param: string, message: string): never {
  throw new BadRequestError(message, { param, code: 'unsupported_parameter' });
}

const BUILT_IN_TOOLS =
  "Tollgate serves function tools (type 'function') on every provider; built-in tools (web search, file search, computer use, code interpreter, image generation, MCP, shell, apply_patch, custom and namespace tools) run only on OpenAI's servers.";
const ITEM_TYPES =
  "Supported input item types are 'message', 'function_call', 'function_call_output', 'item_reference' and 'reasoning' (skipped); the items of built-in tools run only on OpenAI's servers.";

/** One zod issue as the OpenAI-style 400 a client parses. */
function issueToError(issue: z.core.$ZodIssue, prefix: ReadonlyArray<PropertyKey> = []): BadRequestError {
  const path = [...prefix, ...issue.path];
  const param = paramOf(path);
  switch (issue.code) {
    case 'invalid_type': {
      const input = (issue as { input?: unknown }).input;
      if (input === undefined)
        return new BadRequestError(`Missing required parameter: '${param}'.`, {
          param,
          code: 'missing_required_parameter',
        });
      if (issue.expected === 'int')
        return new BadRequestError(
          `Invalid type for '${param}': expected an integer, but got ${JSON.stringify(input)}.`,
          {
            param,
            code: 'invalid_type',
          },
        );
      return new BadRequestError(
        `Invalid type for '${param}': expected ${article(issue.expected)}, but got ${article(typeName(input))} instead.`,
        { param, code: 'invalid_type' },
      );
    }
    case 'unrecognized_keys': {
      const key = issue.keys[0] ?? '';
      const p = param ? `${param}.${key}` : key;
      return new BadRequestError(`Unknown parameter: '${p}'.`, { param: p, code: 'unknown_parameter' });
    }
    case 'invalid_value': {
      const got = JSON.stringify((issue as { input?: unknown }).input);
      return new BadRequestError(
        `Invalid value for '${param}': ${got}. Supported values are: ${issue.values.map((v) => `'${String(v)}'`).join(', ')}.`,
        { param, code: 'invalid_value' },
      );
    }
    case 'invalid_union': {
      const u = issue as z.core.$ZodIssueInvalidUnion & { note?: string; options?: unknown[] };
      if (u.note === 'No matching discriminator') {
        const got = JSON.stringify((issue as { input?: Record<string, unknown> }).input?.type);
        const options = (u.options ?? []).map((o) => `'${String(o)}'`).join(', ');
        const why = /^tools\[\d+\]\.type$/.test(param)
          ? BUILT_IN_TOOLS
          : /^tool_choice\.type$/.test(param)
            ? `Supported tool choices are 'none', 'auto', 'required', a function ({"type":"function","name":...}) and 'allowed_tools' over functions. ${BUILT_IN_TOOLS}`
            : /^input\[\d+\]\.type$/.test(param)
              ? ITEM_TYPES
              : `Supported values are: ${options}.`;
        if (got === undefined)
          return new BadRequestError(`Missing required parameter: '${param}'. ${why}`, {
            param,
            code: 'missing_required_parameter',
          });
        return new BadRequestError(`Unsupported value for '${param}': ${got}. ${why}`, {
          param,
          code: 'unsupported_value',
        });
      }
      // Report the alternative that got furthest: its deepest issue names the real field.
      const best = pickBranch(u.errors);
      if (best) return issueToError(best, path);
      return new BadRequestError(`Invalid value for '${param}'.`, { param, code: 'invalid_value' });
    }
    case 'too_small':
    case 'too_big': {
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const origin = (issue as { origin?: string }).origin;
      const what =
        origin === 'string'
          ? `a string of ${issue.code === 'too_small' ? 'at least' : 'at most'} ${String(bound)} characters`
          : origin === 'array'
            ? `an array of ${issue.code === 'too_small' ? 'at least' : 'at most'} ${String(bound)} items`
            : `a value ${issue.code === 'too_small' ? '>=' : '<='} ${String(bound)}`;
      return new BadRequestError(`Invalid '${param}': expected ${what}.`, { param, code: 'invalid_value' });
    }
    default:
      return new BadRequestError(`Invalid '${param}': ${issue.message}.`, { param, code: 'invalid_value' });
  }
}

function pickBranch(branches: z.core.$ZodIssue[][]): z.core.$ZodIssue | undefined {
  let best: z.core.$ZodIssue | undefined;
  let depth = -1;
  for (const issues of branches) {
    for (const i of issues) {
      // A branch that failed on its own type (a string where an array was expected) says less
      // than one that failed deeper inside.
      const d = i.path.length + (i.code === 'invalid_type' && i.path.length === 0 ? 0 : 0.5);
      if (d > depth) {
        depth = d;
        best = i;
      }
    }
  }
  if (best && best.path.length === 0 && best.code === 'invalid_type') {
    // Every alternative failed on the value's own type: name them all.
    const expected = branches.flatMap((b) => b.map((i) => (i.code === 'invalid_type' ? i.expected : '')));
    const names = [...new Set(expected.filter(Boolean))];
    return { ...best, expected: names.join(' or ') } as z.core.$ZodIssue;
  }
  return best;
}

function article(t: string): string {
  if (t.includes(' or ')) return t;
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

/** Structural validation of a body with zod; the first issue becomes the 400. */
function parseShape(body: unknown): ResponseCreateBody {
  if (body === undefined || body === null || body === '')
    throw new BadRequestError('The request body is empty; send a JSON object with `model` and `input`.');
  if (typeof body !== 'object' || Array.isArray(body))
    throw new BadRequestError(`The request body must be a JSON object, got ${typeName(body)}.`);
  const r = responseCreateSchema.safeParse(body, { reportInput: true });
  if (!r.success) throw issueToError(r.error.issues[0] as z.core.$ZodIssue);
  return r.data;
}

/** Refuse what changes the answer and cannot be honoured (a 400 naming the field). */
function refuseUnsupported(b: ResponseCreateBody): void {
  if (b.background === true)
    unsupported(
      'background',
      "'background': true is not supported: Tollgate answers while the connection is open (POST /v1/chat/async queues work instead).",
    );
  if (b.conversation !== undefined && b.conversation !== null)
    unsupported(
      'conversation',
      "Conversation objects are not supported: continue a stored response with 'previous_response_id', or send the whole conversation in 'input'.",
    );
  if (b.prompt !== undefined && b.prompt !== null)
    unsupported(
      'prompt',
      "Reusable prompts live on OpenAI's servers and are not supported: send their text in 'instructions' and 'input'.",
    );
  if (b.context_management && b.context_management.length > 0)
    unsupported('context_management', 'Server-side context compaction is not supported.');
  if (b.moderation !== undefined && b.moderation !== null)
    unsupported('moderation', 'Moderated responses are not supported.');
  b.tools?.forEach((t, i) => {
    if (t.defer_loading === true)
      unsupported(
        `tools[${i}].defer_loading`,
        "'defer_loading' needs OpenAI's tool search, which Tollgate does not run; send the tool without it.",
      );
    if (t.async === true) unsupported(`tools[${i}].async`, 'Asynchronous function calls are not supported.');
  });
}

function normalizePart(
  part: z.infer<typeof contentPart>,
  role: 'user' | 'system' | 'developer',
  param: string,
): InputPart {
  switch (part.type) {
    case 'input_text':
      return { type: 'input_text', text: part.text };
    case 'input_image': {
      if (part.file_id)
        unsupported(
          `${param}.file_id`,
          "Images by 'file_id' need OpenAI's file store, which Tollgate does not have; send the image as a data: URI in 'image_url'.",
        );
      const url = part.image_url;
      if (!url) fail(`${param}.image_url`, `Missing required parameter: '${param}.image_url'.`);
      if (!/^(data:image\/[A-Za-z0-9.+-]+;base64,|https?:\/\/)/i.test(url))
        fail(
          `${param}.image_url`,
          `'${param}.image_url' must be a data: URI (data:image/png;base64,...) or an http(s) URL.`,
        );
      return { type: 'input_image', image_url: url, detail: part.detail ?? 'auto' };
    }
    case 'input_file':
      return unsupported(
        param,
        "File inputs ('input_file') are not supported: send text as 'input_text' and images as 'input_image'.",
      );
    default:
      return fail(
        `${param}.type`,
        `Invalid value for '${param}.type': '${part.type}' is an assistant part; a '${role}' message takes 'input_text' and 'input_image'.`,
      );
  }
}

function normalizeAssistantPart(part: z.infer<typeof contentPart>, param: string): AssistantPart {
  switch (part.type) {
    case 'output_text':
      return { type: 'output_text', text: part.text, annotations: part.annotations ?? [] };
    case 'refusal':
      return { type: 'refusal', refusal: part.refusal };
    // LangChain sends an assistant's text as input_text; the meaning is unambiguous.
    case 'input_text':
      return { type: 'output_text', text: part.text, annotations: [] };
    default:
      return fail(
        `${param}.type`,
        `Invalid value for '${param}.type': '${part.type}'. An assistant message takes 'output_text' and 'refusal' parts.`,
      );
  }
}

function normalizeItem(raw: RawInputItem, param: string): DraftItem | null {
  switch (raw.type) {
    case 'message': {
      const id = raw.id ?? null;
      if (raw.role === 'assistant') {
        const content =
          typeof raw.content === 'string'
            ? [{ type: 'output_text' as const, text: raw.content, annotations: [] }]
            : raw.content.map((p, j) => normalizeAssistantPart(p, `${param}.content[${j}]`));
        return { type: 'message', role: 'assistant', content, id, status: raw.status ?? 'completed' };
      }
      const role = raw.role;
      const content =
        typeof raw.content === 'string'
          ? [{ type: 'input_text' as const, text: raw.content }]
          : raw.content.map((p, j) => normalizePart(p, role, `${param}.content[${j}]`));
      return { type: 'message', role, content, id };
    }
    case 'function_call':
      return {
        type: 'function_call',
        call_id: raw.call_id,
        name: raw.name,
        arguments: raw.arguments,
        id: raw.id ?? null,
      };
    case 'function_call_output': {
      let output: string;
      if (typeof raw.output === 'string') output = raw.output;
      else {
        // Chat tool messages carry text: the text parts, in order.
        output = raw.output
          .map((p, j) => {
            if (p.type !== 'input_text')
              unsupported(
                `${param}.output[${j}]`,
                `'${param}.output' may hold only 'input_text' parts: a tool result on the chat path is text.`,
              );
            return p.text;
          })
          .join('');
      }
      return { type: 'function_call_output', call_id: raw.call_id, output, id: raw.id ?? null };
    }
    case 'item_reference':
      return { type: 'item_reference', id: raw.id };
    case 'reasoning':
      return null;
  }
}

function normalizeTool(t: z.infer<typeof functionTool>): FunctionToolSpec {
  return {
    type: 'function',
    name: t.name,
    description: t.description ?? null,
    parameters: t.parameters ?? null,
    strict: t.strict ?? null,
  };
}

function normalizeToolChoice(c: z.infer<typeof toolChoiceSchema> | null | undefined): ToolChoice {
  if (c === undefined || c === null) return 'auto';
  if (typeof c === 'string') return c;
  if (c.type === 'function') return { type: 'function', name: c.name };
  return {
    type: 'allowed_tools',
    mode: c.mode,
    tools: c.tools.map((t) => ({ type: 'function' as const, name: t.name })),
  };
}

function normalizeFormat(f: z.infer<typeof textFormatSchema> | null | undefined): TextFormat {
  if (!f || f.type === 'text') return { type: 'text' };
  if (f.type === 'json_object') return { type: 'json_object' };
  return {
    type: 'json_schema',
    name: f.name,
    schema: f.schema,
    ...(f.description ? { description: f.description } : {}),
    strict: f.strict ?? null,
  };
}

/** Checks that span fields: tools named by tool_choice exist, metadata size. */
function crossCheck(b: ResponseCreateBody, tools: FunctionToolSpec[]): void {
  const names = new Set(tools.map((t) => t.name));
  const seen = new Set<string>();
  tools.forEach((t, i) => {
    if (seen.has(t.name)) fail(`tools[${i}].name`, `Duplicate function name '${t.name}' in 'tools'.`);
    seen.add(t.name);
  });
  const c = b.tool_choice;
  if (c && typeof c === 'object') {
    const wanted = c.type === 'function' ? [{ name: c.name, param: 'tool_choice.name' }] : [];
    if (c.type === 'allowed_tools')
      c.tools.forEach((t, i) => {
        wanted.push({ name: t.name, param: `tool_choice.tools[${i}].name` });
      });
    for (const w of wanted)
      if (!names.has(w.name))
        fail(w.param, `Tool choice names the function '${w.name}', which is not in 'tools'.`);
  }
  if ((c === 'required' || (c && typeof c === 'object')) && tools.length === 0)
    fail('tool_choice', "'tool_choice' needs at least one function in 'tools'.");
  if (b.metadata && Object.keys(b.metadata).length > MAX_METADATA_KEYS)
    fail('metadata', `'metadata' may have at most ${MAX_METADATA_KEYS} keys.`);
}

/**
 * Validate a `POST /v1/responses` body and apply OpenAI's defaults. Item references and
 * `previous_response_id` are resolved later, against the caller's stored responses.
 */
export function parseResponsesRequest(body: unknown): ResponsesRequest {
  const b = parseShape(body);
  refuseUnsupported(b);
  const tools = (b.tools ?? []).map(normalizeTool);
  crossCheck(b, tools);
  const rawInput = b.input;
  const input: DraftEntry[] = [];
  if (typeof rawInput === 'string') {
    input.push({
      item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: rawInput }], id: null },
      param: 'input',
    });
  } else if (rawInput) {
    rawInput.forEach((raw, i) => {
      const param = `input[${i}]`;
      const item = normalizeItem(raw, param);
      if (item) input.push({ item, param });
    });
  }
  const previousResponseId = b.previous_response_id ?? null;
  if (rawInput === undefined && previousResponseId === null)
    fail('input', "Missing required parameter: 'input'.", 'missing_required_parameter');
  if (input.length === 0 && previousResponseId === null)
    fail('input', "'input' must contain at least one message or item.");
  return {
    model: b.model,
    input,
    instructions: b.instructions ?? null,
    tools,
    toolChoice: normalizeToolChoice(b.tool_choice),
    parallelToolCalls: b.parallel_tool_calls ?? true,
    text: { format: normalizeFormat(b.text?.format), verbosity: b.text?.verbosity ?? 'medium' },
    maxOutputTokens: b.max_output_tokens ?? null,
    temperature: b.temperature ?? null,
    topP: b.top_p ?? null,
    metadata: b.metadata ?? {},
    user: b.user ?? null,
    stream: b.stream === true,
    store: b.store ?? true,
    previousResponseId,
    reasoning: { effort: b.reasoning?.effort ?? null, summary: b.reasoning?.summary ?? null },
    echo: {
      prompt_cache_key: b.prompt_cache_key ?? null,
      safety_identifier: b.safety_identifier ?? null,
      truncation: b.truncation ?? 'disabled',
      top_logprobs: b.top_logprobs ?? null,
      max_tool_calls: b.max_tool_calls ?? null,
    },
  };
}

// ----------------------------------------------------------------------------------------------
// Query strings of GET /v1/responses/{id} and /input_items

const includeQuery = z.union([z.enum(INCLUDABLES), z.array(z.enum(INCLUDABLES))]);
const queryFlag = z.enum(['true', 'false']);
const queryCount = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a non-negative integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** `GET /v1/responses/{id}`: `stream=true` replays the stored response as events. */
export const retrieveQuerySchema = z.looseObject({
  include: includeQuery.optional().meta({ description: "Accepted and ignored (OpenAI's include values)" }),
  stream: queryFlag.optional().meta({ description: '`true`: the stored response as SSE events' }),
  starting_after: queryCount(0, Number.MAX_SAFE_INTEGER)
    .optional()
    .meta({ description: 'With stream=true: only events after this sequence_number' }),
  include_obfuscation: queryFlag.optional().meta({ description: 'Accepted and ignored' }),
});

/** `GET /v1/responses/{id}/input_items`. */
export const inputItemsQuerySchema = z.looseObject({
  limit: queryCount(1, 100).optional().meta({ description: 'Items per page, 1-100 (default 20)' }),
  order: z.enum(['asc', 'desc']).optional().meta({ description: 'Default `desc` (newest first)' }),
  after: z.string().optional().meta({ description: 'An item id: the page starts after it' }),
  before: z.string().optional().meta({ description: 'An item id: the page ends before it' }),
  include: includeQuery.optional().meta({ description: "Accepted and ignored (OpenAI's include values)" }),
});

/** Validate a query string (`include[]=...` as the SDK sends arrays is read as `include`). */
export function parseQueryWith<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  const q: Record<string, unknown> = { ...((query ?? {}) as Record<string, unknown>) };
  if (q['include[]'] !== undefined) {
    q.include = q['include[]'];
    delete q['include[]'];
  }
  const r = schema.safeParse(q, { reportInput: true });
  if (!r.success) throw issueToError(r.error.issues[0] as z.core.$ZodIssue);
  return r.data;
}
