import type {
  CachePointBlock,
  ContentBlock,
  ConverseRequest,
  DocumentFormat,
  ImageFormat,
  InferenceConfiguration,
  Message,
  SystemContentBlock,
  Tool,
  ToolConfiguration,
  ToolInputSchema,
} from '@aws-sdk/client-bedrock-runtime';
import { BadRequestError } from '../../errors';
import type { ChatMessage, ChatRequest } from '../../wire/chat';
import { bedrockIdentifier, ToolNames } from './tool-names';

/**
 * OpenAI chat completions -> the Converse API. Every rule is listed in docs/providers.md; the
 * request fields follow one rule: translated when Converse has the feature, ignored when the
 * field cannot change the answer, refused (400 naming it) when it is an OpenAI feature Converse
 * lacks, and passed in `additionalModelRequestFields` when it is not an OpenAI field at all
 * (model-specific fields such as `top_k` or `thinking`, which the model itself accepts or
 * refuses with a ValidationException, so nothing is dropped on the way).
 */

/** A Converse request plus what translating the answer back needs. */
export interface ConverseCall {
  readonly input: ConverseRequest & { modelId: string; messages: Message[] };
  /** Tool names as sent, for mapping the answer's back. */
  readonly names: ToolNames;
  /** The stand-in tool of a `toolConfig` sent only because the history holds tool calls. */
  readonly placeholderTool: string | null;
  /** `parallel_tool_calls: false`: the answer keeps its first tool call only. */
  readonly singleToolCall: boolean;
}

/** Name of the stand-in tool (answers that call it anyway have the call removed). */
export const PLACEHOLDER_TOOL = 'tollgate_no_tool_available';

/** Text of the user turn put before a conversation that opens with an assistant turn. */
export const OPENING_USER_TEXT = '(conversation start)';

/** A tool result with no text (Bedrock refuses empty and whitespace-only text). */
export const EMPTY_TOOL_RESULT = '(no output)';

/** Fields translated into the Converse request (or into the way the answer is built). */
const TRANSLATED = new Set([
  'model',
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'temperature',
  'top_p',
  'stop',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'response_format',
  'service_tier',
  'stream',
  'stream_options',
  'n',
]);

/** OpenAI fields that cannot change the answer: accepted and not sent. */
const NO_EFFECT = new Set([
  'user',
  'store',
  'metadata',
  'safety_identifier',
  'prompt_cache_key',
  'prompt_cache_retention',
]);

/**
 * OpenAI features Converse does not have: refused unless set to the value that means "off"
 * (SDKs such as LangChain send `frequency_penalty: 0` on every call).
 */
const UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  frequency_penalty: (v) => v === 0,
  presence_penalty: (v) => v === 0,
  logit_bias: (v) => isObject(v) && Object.keys(v).length === 0,
  logprobs: (v) => v === false,
  top_logprobs: (v) => v === 0,
  seed: () => false,
  functions: () => false,
  function_call: () => false,
  modalities: (v) => Array.isArray(v) && v.every((m) => m === 'text'),
  audio: () => false,
  prediction: () => false,
  web_search_options: () => false,
  reasoning_effort: () => false,
  verbosity: () => false,
};

const WHY_UNSUPPORTED: Record<string, string> = {
  reasoning_effort:
    'Bedrock models take reasoning settings as model-specific fields (e.g. `thinking` for Claude), which are passed through; send those instead.',
  functions: 'Use `tools` instead of the deprecated `functions`.',
  function_call: 'Use `tool_choice` instead of the deprecated `function_call`.',
  seed: 'Bedrock models have no seed.',
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(param: string, message: string): never {
  throw new BadRequestError(message, { param });
}

/** Translate a validated chat request (`body.model` is the Bedrock model id, profile or ARN). */
export function toConverse(body: ChatRequest): ConverseCall {
  const names = new ToolNames();
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (value === undefined || value === null || TRANSLATED.has(key) || NO_EFFECT.has(key)) continue;
    const neutral = UNSUPPORTED[key];
    if (neutral) {
      if (neutral(value)) continue;
      fail(
        key,
        `'${key}' is not supported by Amazon Bedrock models.${WHY_UNSUPPORTED[key] ? ` ${WHY_UNSUPPORTED[key]}` : ''}`,
      );
    }
    extra[key] = value;
  }

  const { system, messages, toolHistory } = translateMessages(body.messages);
  const tools = translateTools(body, names, toolHistory);
  const input: ConverseCall['input'] = { modelId: body.model, messages };
  if (system.length > 0) input.system = system;
  const inference = inferenceConfig(body);
  if (inference) input.inferenceConfig = inference;
  if (tools.toolConfig) input.toolConfig = tools.toolConfig;
  const output = outputConfig(body.response_format);
  if (output) input.outputConfig = output;
  const tier = serviceTier(body.service_tier);
  if (tier) input.serviceTier = { type: tier };
  if (Object.keys(extra).length > 0)
    input.additionalModelRequestFields = extra as ConverseRequest['additionalModelRequestFields'];
  return {
    input,
    names,
    placeholderTool: tools.placeholder,
    singleToolCall: body.parallel_tool_calls === false,
  };
}

function inferenceConfig(body: ChatRequest): InferenceConfiguration | null {
  const cfg: InferenceConfiguration = {};
  const max = body.max_completion_tokens ?? body.max_tokens;
  if (typeof max === 'number') cfg.maxTokens = max;
  if (typeof body.temperature === 'number') cfg.temperature = body.temperature;
  // top_p = 1 keeps every token: the same as not sending it, which some models require when
  // temperature is also set (Claude Sonnet 4.5 refuses both).
  if (typeof body.top_p === 'number' && body.top_p !== 1) cfg.topP = body.top_p;
  const stop = body.stop;
  const stops = (typeof stop === 'string' ? [stop] : Array.isArray(stop) ? stop : []).filter(
    (s): s is string => typeof s === 'string' && s.length > 0,
  );
  if (stops.length > 0) cfg.stopSequences = stops;
  return Object.keys(cfg).length > 0 ? cfg : null;
}

function serviceTier(v: unknown): 'flex' | 'priority' | null {
  if (v === undefined || v === null || v === 'auto' || v === 'default') return null;
  if (v === 'flex' || v === 'priority') return v;
  fail(
    'service_tier',
    `'service_tier' ${JSON.stringify(v)} has no Bedrock equivalent; use auto, default, flex or priority.`,
  );
}

function outputConfig(rf: unknown): ConverseRequest['outputConfig'] | null {
  if (!isObject(rf) || rf.type === 'text') return null;
  if (rf.type === 'json_object') {
    fail(
      'response_format.type',
      "Amazon Bedrock models have no JSON mode without a schema; send response_format {type: 'json_schema', json_schema: {name, schema}}.",
    );
  }
  if (rf.type !== 'json_schema')
    fail(
      'response_format.type',
      `'response_format.type' must be text or json_schema, got ${JSON.stringify(rf.type)}.`,
    );
  const js = rf.json_schema;
  if (!isObject(js)) fail('response_format.json_schema', "'response_format.json_schema' must be an object.");
  if (typeof js.name !== 'string' || js.name.length === 0)
    fail('response_format.json_schema.name', "'response_format.json_schema.name' is required.");
  if (!isObject(js.schema))
    fail(
      'response_format.json_schema.schema',
      "'response_format.json_schema.schema' must be a JSON Schema object.",
    );
  return {
    textFormat: {
      type: 'json_schema',
      structure: {
        jsonSchema: {
          schema: JSON.stringify(js.schema),
          name: js.name,
          ...(typeof js.description === 'string' && js.description ? { description: js.description } : {}),
        },
      },
    },
  };
}

// --- messages ----------------------------------------------------------------------------------

interface Translated {
  system: SystemContentBlock[];
  messages: Message[];
  /** Whether any turn holds toolUse or toolResult blocks (Bedrock then wants a toolConfig). */
  toolHistory: boolean;
}

function translateMessages(input: readonly ChatMessage[]): Translated {
  const system: SystemContentBlock[] = [];
  const turns: Message[] = [];
  let toolHistory = false;
  let documents = 0;
  // Tool calls the next tool messages may answer: those of the assistant turn just before.
  let openCalls: Set<string> | null = null;
  const answered = new Set<string>();
  const push = (role: 'user' | 'assistant', blocks: ContentBlock[]) => {
    if (blocks.length === 0) return;
    const last = turns[turns.length - 1];
    if (last && last.role === role) last.content!.push(...blocks);
    else turns.push({ role, content: blocks });
  };

  input.forEach((m, i) => {
    const p = `messages[${i}]`;
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(...systemBlocks(m, p));
        return;
      case 'user': {
        openCalls = null;
        const blocks = userBlocks(m, p, () => ++documents);
        push('user', blocks);
        return;
      }
      case 'assistant': {
        const blocks = assistantBlocks(m, p);
        const calls = new Set<string>();
        for (const b of blocks) if (b.toolUse) calls.add(b.toolUse.toolUseId!);
        if (calls.size > 0) toolHistory = true;
        openCalls = calls;
        push('assistant', blocks);
        return;
      }
      case 'tool': {
        const id = m.tool_call_id as string;
        const mapped = bedrockIdentifier(id);
        if (!openCalls?.has(mapped)) {
          fail(
            `${p}.tool_call_id`,
            `'${p}' answers tool call '${id}', which the assistant message right before it did not make; a tool message must follow the assistant message with that call.`,
          );
        }
        if (answered.has(mapped))
          fail(`${p}.tool_call_id`, `'${p}' answers tool call '${id}' a second time.`);
        answered.add(mapped);
        toolHistory = true;
        const text = partsText(m.content, `${p}.content`);
        push('user', [
          {
            toolResult: {
              toolUseId: mapped,
              content: [{ text: text.trim() ? text : EMPTY_TOOL_RESULT }],
            },
          },
        ]);
        return;
      }
      default:
        fail(`${p}.role`, `Role '${m.role}' is not supported by Amazon Bedrock models; use 'tool' messages.`);
    }
  });

  // Bedrock wants a turn's tool results before anything else in it.
  for (const t of turns) {
    if (t.role === 'user' && t.content!.length > 1) {
      const results = t.content!.filter((b) => b.toolResult);
      if (results.length > 0 && results.length < t.content!.length)
        t.content = [...results, ...t.content!.filter((b) => !b.toolResult)];
    }
  }
  if (turns.length === 0) {
    fail(
      'messages',
      "'messages' needs at least one user or assistant message with content besides system messages for Amazon Bedrock models.",
    );
  }
  if (turns[0]!.role === 'assistant') turns.unshift({ role: 'user', content: [{ text: OPENING_USER_TEXT }] });
  return { system, messages: turns, toolHistory };
}

/** A cache point after a part or message that asks for one (Anthropic's `cache_control`). */
function cachePoint(holder: Record<string, unknown>): CachePointBlock | null {
  const cc = holder.cache_control;
  if (!isObject(cc)) return null;
  const point: CachePointBlock = { type: 'default' };
  if (cc.ttl === '5m' || cc.ttl === '1h') point.ttl = cc.ttl;
  return point;
}

function hasText(s: string): boolean {
  return s.trim().length > 0;
}

function systemBlocks(m: ChatMessage, p: string): SystemContentBlock[] {
  const out: SystemContentBlock[] = [];
  if (typeof m.content === 'string') {
    if (hasText(m.content)) out.push({ text: m.content });
  } else if (Array.isArray(m.content)) {
    m.content.forEach((part: Record<string, unknown>, j) => {
      if (part.type !== 'text')
        fail(`${p}.content[${j}]`, `'${p}.content[${j}]': a ${m.role} message takes text parts only.`);
      if (!hasText(part.text as string)) return;
      out.push({ text: part.text as string });
      const cp = cachePoint(part);
      if (cp) out.push({ cachePoint: cp });
    });
  }
  const cp = cachePoint(m);
  if (cp && out.length > 0) out.push({ cachePoint: cp });
  return out;
}

function userBlocks(m: ChatMessage, p: string, nextDocument: () => number): ContentBlock[] {
  const out: ContentBlock[] = [];
  if (typeof m.content === 'string') {
    if (hasText(m.content)) out.push({ text: m.content });
  } else if (Array.isArray(m.content)) {
    m.content.forEach((part: Record<string, unknown>, j) => {
      const pp = `${p}.content[${j}]`;
      const block = userPart(part, pp, nextDocument);
      if (!block) return;
      out.push(block);
      const cp = cachePoint(part);
      if (cp) out.push({ cachePoint: cp });
    });
  }
  const cp = cachePoint(m);
  if (cp && out.length > 0) out.push({ cachePoint: cp });
  return out;
}

function userPart(
  part: Record<string, unknown>,
  pp: string,
  nextDocument: () => number,
): ContentBlock | null {
  switch (part.type) {
    case 'text':
      return hasText(part.text as string) ? { text: part.text as string } : null;
    case 'image_url': {
      const url = isObject(part.image_url) ? part.image_url.url : undefined;
      if (typeof url !== 'string') fail(`${pp}.image_url.url`, `'${pp}.image_url.url' must be a string.`);
      return { image: imageBlock(url, `${pp}.image_url.url`) };
    }
    case 'file':
      return { document: documentBlock(part.file, pp, nextDocument) };
    default:
      fail(
        `${pp}.type`,
        `Content part type ${JSON.stringify(part.type)} at '${pp}' is not supported by Amazon Bedrock models (text, image_url and file are).`,
      );
  }
}

const IMAGE_FORMATS: Record<string, ImageFormat> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/jpg': 'jpeg',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

const DOCUMENT_FORMATS: Record<string, DocumentFormat> = {
  'application/pdf': 'pdf',
  'text/csv': 'csv',
  'application/msword': 'doc',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.ms-excel': 'xls',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'text/html': 'html',
  'text/plain': 'txt',
  'text/markdown': 'md',
};

const DATA_URI = /^data:([^;,]*)((?:;[^;,]*)*),(.*)$/s;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The bytes and media type of a base64 `data:` URI, or a 400 naming `param`. */
function dataUri(url: string, param: string, what: string): { mime: string; bytes: Uint8Array } {
  if (/^https?:/i.test(url)) {
    fail(
      param,
      `'${param}' is a URL; Amazon Bedrock models take ${what} inline only, as a base64 data: URI (the gateway does not fetch URLs on a client's behalf).`,
    );
  }
  const m = DATA_URI.exec(url);
  if (!m || !/;base64$/i.test(m[2] ?? ''))
    fail(param, `'${param}' must be a base64 data: URI (data:<media type>;base64,...).`);
  const b64 = (m[3] ?? '').replace(/\s+/g, '');
  if (!BASE64.test(b64)) fail(param, `'${param}' is not valid base64.`);
  return { mime: (m[1] ?? '').toLowerCase(), bytes: Buffer.from(b64, 'base64') };
}

function imageBlock(url: string, param: string): NonNullable<ContentBlock['image']> {
  const { mime, bytes } = dataUri(url, param, 'images');
  const format = IMAGE_FORMATS[mime];
  if (!format)
    fail(
      param,
      `'${param}' has media type '${mime}'; Amazon Bedrock models take PNG, JPEG, GIF and WebP images.`,
    );
  return { format, source: { bytes } };
}

function documentBlock(
  file: unknown,
  pp: string,
  nextDocument: () => number,
): NonNullable<ContentBlock['document']> {
  if (!isObject(file)) fail(`${pp}.file`, `'${pp}.file' must be an object.`);
  if (typeof file.file_data !== 'string') {
    fail(
      `${pp}.file.file_data`,
      `'${pp}.file.file_data' is required: Amazon Bedrock models take files inline as a base64 data: URI (file ids are not supported).`,
    );
  }
  const { mime, bytes } = dataUri(file.file_data, `${pp}.file.file_data`, 'files');
  const format = DOCUMENT_FORMATS[mime];
  if (!format) {
    fail(
      `${pp}.file.file_data`,
      `'${pp}.file.file_data' has media type '${mime}'; Amazon Bedrock models take PDF, CSV, DOC, DOCX, XLS, XLSX, HTML, TXT and Markdown documents.`,
    );
  }
  const n = nextDocument();
  // Bedrock document names: letters, digits, single spaces, hyphens, parentheses, brackets;
  // unique within the request (hence the number).
  const stem =
    typeof file.filename === 'string'
      ? file.filename
          .replace(/\.[^.]*$/, '')
          .replace(/[^a-zA-Z0-9\s\-()[\]]+/g, ' ')
          .replace(/\s+/g, ' ')
          .trim()
          .slice(0, 100)
      : '';
  return { format, name: `${stem || 'document'} ${n}`, source: { bytes } };
}

/** The text of a message's content: a string or its text parts (others refused). */
function partsText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part: Record<string, unknown>, j) => {
      if (part.type !== 'text') fail(`${param}[${j}]`, `'${param}[${j}]' must be a text part.`);
      return part.text as string;
    })
    .join('');
}

function assistantBlocks(m: ChatMessage, p: string): ContentBlock[] {
  const out: ContentBlock[] = [];
  if (m.function_call !== undefined && m.function_call !== null)
    fail(`${p}.function_call`, `'${p}.function_call' is deprecated; send 'tool_calls'.`);
  if (typeof m.content === 'string') {
    if (hasText(m.content)) out.push({ text: m.content });
  } else if (Array.isArray(m.content)) {
    m.content.forEach((part: Record<string, unknown>, j) => {
      const text = part.type === 'text' ? part.text : part.type === 'refusal' ? part.refusal : undefined;
      if (typeof text !== 'string')
        fail(
          `${p}.content[${j}]`,
          `'${p}.content[${j}]': an assistant message takes text and refusal parts only.`,
        );
      if (hasText(text)) out.push({ text });
    });
  }
  (m.tool_calls ?? []).forEach((tc, k) => {
    const tp = `${p}.tool_calls[${k}]`;
    if (!isObject(tc)) fail(tp, `'${tp}' must be an object.`);
    const fn = tc.function;
    if (typeof tc.id !== 'string' || tc.id.length === 0)
      fail(`${tp}.id`, `'${tp}.id' must be a non-empty string.`);
    if (!isObject(fn) || typeof fn.name !== 'string' || fn.name.length === 0)
      fail(`${tp}.function.name`, `'${tp}.function.name' must be a non-empty string.`);
    out.push({
      toolUse: {
        toolUseId: bedrockIdentifier(tc.id),
        // Tool names in the history map the way the request's tools do (a pure function of the name).
        name: bedrockIdentifier(fn.name),
        input: toolInput(fn.arguments) as ToolInputSchema.JsonMember['json'],
      },
    });
  });
  return out;
}

/**
 * Tool call arguments as a JSON object. Models send `""` for a call without arguments and
 * clients echo it; Bedrock needs an object, so `""`, invalid JSON and non-objects become `{}`.
 */
export function toolInput(args: unknown): Record<string, unknown> {
  if (isObject(args)) return args;
  if (typeof args !== 'string' || args.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(args);
    return isObject(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

// --- tools -------------------------------------------------------------------------------------

const PLACEHOLDER_SPEC: Tool = {
  toolSpec: {
    name: PLACEHOLDER_TOOL,
    description: 'No tool is available in this turn. Never call this tool; answer in text.',
    inputSchema: { json: { type: 'object', properties: {} } },
  },
};

interface ToolsOut {
  toolConfig: ToolConfiguration | null;
  placeholder: string | null;
}

function translateTools(body: ChatRequest, names: ToolNames, toolHistory: boolean): ToolsOut {
  const list = Array.isArray(body.tools) ? body.tools : [];
  const specs = new Map<string, Tool>();
  list.forEach((t: Record<string, unknown>, i) => {
    const p = `tools[${i}]`;
    if (t.type !== 'function') {
      fail(
        `${p}.type`,
        `Tool type ${JSON.stringify(t.type)} at '${p}' is not supported by Amazon Bedrock models; only function tools are.`,
      );
    }
    const fn = t.function;
    if (!isObject(fn) || typeof fn.name !== 'string' || fn.name.length === 0)
      fail(`${p}.function.name`, `'${p}.function.name' must be a non-empty string.`);
    if (fn.parameters !== undefined && fn.parameters !== null && !isObject(fn.parameters))
      fail(`${p}.function.parameters`, `'${p}.function.parameters' must be a JSON Schema object.`);
    if (specs.has(fn.name))
      fail(`${p}.function.name`, `The tool name '${fn.name}' appears twice in 'tools'.`);
    const name = names.add(fn.name, `${p}.function.name`);
    specs.set(fn.name, {
      toolSpec: {
        name,
        ...(typeof fn.description === 'string' && fn.description ? { description: fn.description } : {}),
        inputSchema: {
          json: (isObject(fn.parameters)
            ? fn.parameters
            : { type: 'object', properties: {} }) as ToolInputSchema.JsonMember['json'],
        },
        ...(fn.strict === true ? { strict: true } : {}),
      },
    });
  });

  const placeholder = (): ToolsOut =>
    toolHistory
      ? { toolConfig: { tools: [PLACEHOLDER_SPEC] }, placeholder: PLACEHOLDER_TOOL }
      : { toolConfig: null, placeholder: null };

  const choice = body.tool_choice;
  if (specs.size === 0) {
    if (choice === 'required' || isObject(choice))
      fail('tool_choice', "'tool_choice' needs 'tools' to choose from.");
    return placeholder();
  }
  if (choice === 'none') return placeholder();
  const all = [...specs.values()];
  // 'auto' is what Bedrock does without a toolChoice; some models refuse an explicit one.
  if (choice === undefined || choice === null || choice === 'auto')
    return { toolConfig: { tools: all }, placeholder: null };
  if (choice === 'required')
    return { toolConfig: { tools: all, toolChoice: { any: {} } }, placeholder: null };
  if (!isObject(choice))
    fail(
      'tool_choice',
      `'tool_choice' must be none, auto, required or an object, got ${JSON.stringify(choice)}.`,
    );
  if (choice.type === 'function') {
    const name = isObject(choice.function) ? choice.function.name : undefined;
    if (typeof name !== 'string' || !specs.has(name)) {
      fail(
        'tool_choice.function.name',
        `'tool_choice.function.name' must name one of the tools (${[...specs.keys()].join(', ')}).`,
      );
    }
    return {
      toolConfig: {
        tools: all,
        toolChoice: { tool: { name: names.add(name, 'tool_choice.function.name') } },
      },
      placeholder: null,
    };
  }
  if (choice.type === 'allowed_tools') {
    const at = choice.allowed_tools;
    if (!isObject(at) || !Array.isArray(at.tools))
      fail(
        'tool_choice.allowed_tools',
        "'tool_choice.allowed_tools' must be an object with 'mode' and 'tools'.",
      );
    const allowed = at.tools.map((t: unknown, k) => {
      const name = isObject(t) && isObject(t.function) ? t.function.name : undefined;
      const spec = typeof name === 'string' ? specs.get(name) : undefined;
      if (!spec)
        fail(
          `tool_choice.allowed_tools.tools[${k}]`,
          `'tool_choice.allowed_tools.tools[${k}]' must name one of the tools.`,
        );
      return spec;
    });
    if (allowed.length === 0) return placeholder();
    if (at.mode === 'required')
      return { toolConfig: { tools: allowed, toolChoice: { any: {} } }, placeholder: null };
    if (at.mode === 'auto' || at.mode === undefined)
      return { toolConfig: { tools: allowed }, placeholder: null };
    fail('tool_choice.allowed_tools.mode', "'tool_choice.allowed_tools.mode' must be auto or required.");
  }
  fail(
    'tool_choice.type',
    `'tool_choice.type' ${JSON.stringify(choice.type)} is not supported by Amazon Bedrock models.`,
  );
}
