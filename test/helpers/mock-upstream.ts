/**
 * A scripted OpenAI-compatible upstream on a real node:http server, for the service tests
 * and the benchmarks. Hot path kept lean (no frameworks, no logging, one closure per
 * request) because benchmarks push ~30k req/s through it on loopback.
 *
 * Run directly (`tsx test/helpers/mock-upstream.ts --port 0`) it prints
 * `MOCK_UPSTREAM_URL=<baseUrl>` and serves until SIGINT/SIGTERM.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChatCompletionCreateParams } from 'openai/resources/chat/completions';

/** A tool call as it appears in an assistant message. */
export interface MockToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** Usage as the upstream reports it; `total_tokens` is filled in when omitted. */
export interface MockUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** What the mock does with one chat completion request. */
export type MockScript =
  | {
      kind: 'reply';
      /** Default: a fixed greeting, or null when `toolCalls` is set. */
      content?: string;
      toolCalls?: MockToolCall[];
      /** Default: 'tool_calls' when `toolCalls` is set, else 'stop'. */
      finishReason?: string;
      usage?: MockUsage;
      delayMs?: number;
    }
  | {
      kind: 'stream';
      tokens: string[];
      firstTokenDelayMs?: number;
      /** Between tokens. */
      delayMs?: number;
      usage?: MockUsage;
      /** Streamed as tool_call deltas after the content tokens. */
      toolCalls?: MockToolCall[];
      finishReason?: string;
    }
  | {
      kind: 'error';
      status: number;
      message?: string;
      /** Default derived from the status, like OpenAI's (`rate_limit_error`, `server_error`...). */
      type?: string;
      code?: string;
      /** Extra response headers, e.g. `{ 'retry-after': '2' }`. */
      headers?: Record<string, string>;
    }
  /** Accepts the request and never answers, until the client goes away or the mock closes. */
  | { kind: 'hang' }
  /** Sends the headers and `afterTokens` chunks, then destroys the socket. */
  | { kind: 'die-mid-stream'; tokens: string[]; afterTokens: number; delayMs?: number };

/** One chat completion request the mock received. */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body (`{}` when it was not a JSON object); see {@link chatBody}. */
  body: Record<string, unknown>;
  /** `body.model` when it is a string, else ''. */
  model: string;
  /** The client went away before the response was complete. */
  aborted: boolean;
  /** The whole response was handed to the socket. */
  finished: boolean;
}

/** The recorded body typed as the request the OpenAI SDK sends. Not validated. */
export function chatBody(request: RecordedRequest): ChatCompletionCreateParams {
  return request.body as unknown as ChatCompletionCreateParams;
}

/** A running mock upstream. */
export interface MockUpstream {
  /** e.g. `http://127.0.0.1:PORT/v1` */
  readonly baseUrl: string;
  readonly port: number;
  /** Chat completion requests in arrival order; only the most recent ~10,000 are kept. */
  readonly requests: RecordedRequest[];
  /**
   * Queues scripts for a model id (the request body's `model`), consumed one per request.
   * Model `'*'` queues for any model, used when the model's own queue is empty. When both
   * are empty the default applies (see {@link MockUpstream.setDefault}).
   */
  enqueue(model: string, ...scripts: MockScript[]): void;
  /** Default script for a model (`'*'` = any model without its own default). */
  setDefault(model: string, script: MockScript): void;
  /** Ids `GET /v1/models` lists. Default `['mock-small', 'mock-large']`. */
  models: string[];
  /**
   * When set, every request must carry `Authorization: Bearer <apiKey>` or gets OpenAI's 401
   * `invalid_api_key` (a placeholder or rotated-away key). Default null: any key.
   */
  apiKey: string | null;
  /** Clears queues, recorded requests and per-model defaults; `'*'` goes back to the greeting. */
  reset(): void;
  /** Resolves once `n` chat completion requests arrived since start / the last reset. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  /** Closes the server and every connection, including hanging ones. */
  close(): Promise<void>;
}

const DEFAULT_CONTENT = 'Hello from the mock upstream.';
const DEFAULT_SCRIPT: MockScript = { kind: 'reply', content: DEFAULT_CONTENT };
const DEFAULT_MODELS = ['mock-small', 'mock-large'];
const REQUESTS_CAP = 10_000;
/** Trim in batches so the array is not shifted on every request under load. */
const REQUESTS_TRIM = 1_000;

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
};
const DONE = 'data: [DONE]\n\n';

/** Shared so request objects do not each get a closure just to swallow resets. */
const ignore = (): void => {};

interface Waiter {
  n: number;
  resolve: () => void;
}

/** Per-request state shared by the writers and the close handler. */
interface Exchange {
  rec: RecordedRequest;
  res: ServerResponse;
  timer: NodeJS.Timeout | undefined;
  /** The mock itself cut the connection (die-mid-stream); not a client abort. */
  killed: boolean;
}

/**
 * Starts the mock on 127.0.0.1 (`opts.port`, default a free port).
 */
export async function startMockUpstream(opts: { port?: number } = {}): Promise<MockUpstream> {
  const queues = new Map<string, MockScript[]>();
  const defaults = new Map<string, MockScript>([['*', DEFAULT_SCRIPT]]);
  const requests: RecordedRequest[] = [];
  let received = 0;
  let waiters: Waiter[] = [];
  let seq = 0;

  const pickScript = (model: string): MockScript => {
    const own = queues.get(model);
    if (own !== undefined && own.length > 0) return own.shift()!;
    const any = queues.get('*');
    if (any !== undefined && any.length > 0) return any.shift()!;
    return defaults.get(model) ?? defaults.get('*') ?? DEFAULT_SCRIPT;
  };

  const record = (rec: RecordedRequest): void => {
    if (requests.length >= REQUESTS_CAP + REQUESTS_TRIM) requests.splice(0, REQUESTS_TRIM);
    requests.push(rec);
    received++;
    if (waiters.length > 0) {
      const ready = waiters.filter((w) => w.n <= received);
      if (ready.length > 0) {
        waiters = waiters.filter((w) => w.n > received);
        for (const w of ready) w.resolve();
      }
    }
  };

  const onChat = (req: IncomingMessage, res: ServerResponse, path: string, raw: string): void => {
    let body: Record<string, unknown> = {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      body = parsed as Record<string, unknown>;
    }
    const model = typeof body['model'] === 'string' ? body['model'] : '';
    const rec: RecordedRequest = {
      method: req.method ?? 'POST',
      path,
      headers: req.headers,
      body,
      model,
      aborted: false,
      finished: false,
    };
    record(rec);
    const ex: Exchange = { rec, res, timer: undefined, killed: false };
    res.on('close', () => {
      if (ex.timer !== undefined) clearTimeout(ex.timer);
      if (res.writableFinished) rec.finished = true;
      else if (!ex.killed) rec.aborted = true;
    });
    if (parsed === undefined) {
      sendError(ex, {
        kind: 'error',
        status: 400,
        message: 'We could not parse the JSON body of your request.',
      });
      return;
    }
    const script = pickScript(model);
    if (path.endsWith('/embeddings')) {
      // Embeddings: scripted errors and hangs apply; anything else is the deterministic answer.
      if (script.kind === 'error') sendError(ex, script);
      else if (script.kind !== 'hang') sendEmbeddings(ex, body);
      return;
    }
    switch (script.kind) {
      case 'reply':
        if (script.delayMs) ex.timer = setTimeout(sendReply, script.delayMs, ex, script, ++seq);
        else sendReply(ex, script, ++seq);
        return;
      case 'stream':
        startStream(ex, script, ++seq);
        return;
      case 'error':
        sendError(ex, script);
        return;
      case 'hang':
        return;
      case 'die-mid-stream':
        startDyingStream(ex, script, ++seq);
        return;
    }
  };

  let models = DEFAULT_MODELS.slice();
  let apiKey: string | null = null;
  const server = createServer((req, res) => {
    req.on('error', ignore);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (apiKey !== null && req.headers.authorization !== `Bearer ${apiKey}`) {
      req.resume();
      sendJson(
        res,
        401,
        errorBody('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'),
      );
      return;
    }
    if (
      req.method === 'POST' &&
      (path === '/v1/chat/completions' ||
        path === '/chat/completions' ||
        path === '/v1/embeddings' ||
        path === '/embeddings')
    ) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw =
          chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
        onChat(req, res, path, raw);
      });
      return;
    }
    // Drain any body so the keep-alive connection stays usable.
    req.resume();
    if (req.method === 'GET' && (path === '/v1/models' || path === '/models')) {
      const created = nowSeconds();
      sendJson(res, 200, {
        object: 'list',
        data: models.map((id) => ({ id, object: 'model', created, owned_by: 'mock' })),
      });
      return;
    }
    sendJson(
      res,
      404,
      errorBody(`Unknown request URL: ${req.method} ${path}.`, 'invalid_request_error', 'unknown_url'),
    );
  });
  // Generous keep-alive: benchmark clients hold connections across short idle gaps.
  server.keepAliveTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    get models() {
      return models;
    },
    set models(ids: string[]) {
      models = ids;
    },
    get apiKey() {
      return apiKey;
    },
    set apiKey(key: string | null) {
      apiKey = key;
    },
    enqueue(model, ...scripts) {
      const q = queues.get(model);
      if (q) q.push(...scripts);
      else queues.set(model, scripts.slice());
    },
    setDefault(model, script) {
      defaults.set(model, script);
    },
    reset() {
      queues.clear();
      defaults.clear();
      defaults.set('*', DEFAULT_SCRIPT);
      requests.length = 0;
      received = 0;
      models = DEFAULT_MODELS.slice();
      apiKey = null;
    },
    waitForRequests(n, timeoutMs = 5_000) {
      if (received >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          reject(new Error(`mock upstream: got ${received} of ${n} requests within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/**
 * The mock's embedding of one input: deterministic, `dims` long (the request's `dimensions`, else
 * 8), with values that are exact float32 numbers so float and base64 answers agree.
 */
export function mockEmbedding(input: unknown, dims: number): number[] {
  const text = typeof input === 'string' ? input : JSON.stringify(input);
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return Array.from({ length: dims }, (_, i) => Math.fround((((h >>> (i % 24)) & 0xff) - 128) / 128));
}

/** The tokens the mock says one embedding input had: one per 4 characters (or per token id). */
export function mockEmbeddingTokens(input: unknown): number {
  return typeof input === 'string' ? Math.max(1, Math.ceil(input.length / 4)) : (input as unknown[]).length;
}

function sendEmbeddings(ex: Exchange, body: Record<string, unknown>): void {
  const raw = body['input'];
  const items: unknown[] =
    typeof raw === 'string' || (Array.isArray(raw) && typeof raw[0] === 'number')
      ? [raw]
      : ((raw as unknown[]) ?? []);
  const dims = typeof body['dimensions'] === 'number' ? body['dimensions'] : 8;
  const base64 = body['encoding_format'] === 'base64';
  const tokens = items.reduce<number>((n, it) => n + mockEmbeddingTokens(it), 0);
  sendJson(ex.res, 200, {
    object: 'list',
    model: body['model'],
    data: items.map((it, index) => {
      const v = mockEmbedding(it, dims);
      return {
        object: 'embedding',
        index,
        embedding: base64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v,
      };
    }),
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function sendJson(
  res: ServerResponse,
  status: number,
  payload: unknown,
  headers?: Record<string, string>,
): void {
  const text = JSON.stringify(payload);
  // An explicit length keeps keep-alive responses unchunked (writeHead fixes the framing).
  const base = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
  res.writeHead(status, headers ? { ...base, ...headers } : base);
  res.end(text);
}

function errorBody(message: string, type: string, code: string | null) {
  return { error: { message, type, param: null, code } };
}

/** OpenAI's error `type` for a status, when the script does not give one. */
function defaultErrorType(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 409:
      return 'conflict_error';
    case 422:
      return 'unprocessable_entity_error';
    case 429:
      return 'rate_limit_error';
    default:
      return status >= 500 ? 'server_error' : 'invalid_request_error';
  }
}

/** The response is still worth writing to (the client may have gone during a delay). */
function writable(ex: Exchange): boolean {
  return !ex.res.destroyed && !ex.rec.aborted;
}

function sendError(ex: Exchange, s: Extract<MockScript, { kind: 'error' }>): void {
  if (!writable(ex)) return;
  ex.rec.finished = true;
  sendJson(
    ex.res,
    s.status,
    errorBody(
      s.message ?? `Mock upstream error ${s.status}`,
      s.type ?? defaultErrorType(s.status),
      s.code ?? null,
    ),
    s.headers,
  );
}

/** Rough prompt size: a quarter of the characters of the messages' text. */
function promptTokens(body: Record<string, unknown>): number {
  const messages = body['messages'];
  if (!Array.isArray(messages)) return 1;
  let chars = 0;
  for (const m of messages) {
    if (typeof m !== 'object' || m === null) continue;
    const content = (m as { content?: unknown }).content;
    if (typeof content === 'string') chars += content.length;
    else if (Array.isArray(content)) {
      for (const part of content) {
        const text =
          typeof part === 'object' && part !== null ? (part as { text?: unknown }).text : undefined;
        if (typeof text === 'string') chars += text.length;
      }
    }
  }
  return Math.max(1, Math.ceil(chars / 4));
}

function countWords(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const space = c === 32 || c === 10 || c === 9 || c === 13;
    if (!space && !inWord) n++;
    inWord = !space;
  }
  return n;
}

function toolCallTokens(toolCalls: MockToolCall[] | undefined): number {
  if (!toolCalls) return 0;
  let n = 0;
  for (const t of toolCalls) n += Math.ceil((t.function.name.length + t.function.arguments.length) / 4);
  return n;
}

function usageOf(given: MockUsage | undefined, body: Record<string, unknown>, completion: number) {
  if (given) {
    return { ...given, total_tokens: given.total_tokens ?? given.prompt_tokens + given.completion_tokens };
  }
  const prompt = promptTokens(body);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function sendReply(ex: Exchange, s: Extract<MockScript, { kind: 'reply' }>, n: number): void {
  if (!writable(ex)) return;
  const content = s.content ?? (s.toolCalls ? null : DEFAULT_CONTENT);
  const message: Record<string, unknown> = { role: 'assistant', content, refusal: null };
  if (s.toolCalls) message['tool_calls'] = s.toolCalls;
  const completion = (content ? countWords(content) : 0) + toolCallTokens(s.toolCalls);
  ex.rec.finished = true;
  sendJson(ex.res, 200, {
    id: `chatcmpl-mock-${n}`,
    object: 'chat.completion',
    created: nowSeconds(),
    model: ex.rec.model,
    choices: [
      {
        index: 0,
        message,
        finish_reason: s.finishReason ?? (s.toolCalls ? 'tool_calls' : 'stop'),
        logprobs: null,
      },
    ],
    usage: usageOf(s.usage, ex.rec.body, completion),
  });
}

function includeUsage(body: Record<string, unknown>): boolean {
  const so = body['stream_options'];
  return typeof so === 'object' && so !== null && (so as { include_usage?: unknown }).include_usage === true;
}

/** Builds the SSE frames of a streamed completion, in order, without the final `[DONE]`. */
function streamFrames(
  ex: Exchange,
  n: number,
  tokens: string[],
  toolCalls: MockToolCall[] | undefined,
  finishReason: string | undefined,
  usage: MockUsage | undefined,
): string[] {
  const id = `chatcmpl-mock-${n}`;
  const created = nowSeconds();
  const model = ex.rec.model;
  const withUsage = includeUsage(ex.rec.body);
  const frame = (delta: Record<string, unknown>, finish: string | null): string => {
    const chunk: Record<string, unknown> = {
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    };
    // Like OpenAI: with include_usage every chunk carries `usage: null` until the last.
    if (withUsage) chunk['usage'] = null;
    return `data: ${JSON.stringify(chunk)}\n\n`;
  };
  const frames: string[] = [];
  // The role rides on the first token, so a first-token delay delays the first chunk.
  const first = tokens[0] ?? (toolCalls ? null : '');
  frames.push(frame({ role: 'assistant', content: first, refusal: null }, null));
  for (let i = 1; i < tokens.length; i++) frames.push(frame({ content: tokens[i] }, null));
  if (toolCalls) {
    toolCalls.forEach((t, index) => {
      // Arguments in two pieces, so clients have to accumulate them like with the real API.
      const args = t.function.arguments;
      const cut = Math.ceil(args.length / 2);
      frames.push(
        frame(
          {
            tool_calls: [
              { index, id: t.id, type: 'function', function: { name: t.function.name, arguments: '' } },
            ],
          },
          null,
        ),
      );
      frames.push(frame({ tool_calls: [{ index, function: { arguments: args.slice(0, cut) } }] }, null));
      if (cut < args.length) {
        frames.push(frame({ tool_calls: [{ index, function: { arguments: args.slice(cut) } }] }, null));
      }
    });
  }
  frames.push(frame({}, finishReason ?? (toolCalls ? 'tool_calls' : 'stop')));
  if (withUsage) {
    const completion = tokens.length + toolCallTokens(toolCalls);
    frames.push(
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [],
        usage: usageOf(usage, ex.rec.body, completion),
      })}\n\n`,
    );
  }
  return frames;
}

/**
 * Writes `frames` with `firstDelay` before the first and `delay` between the others, then
 * `onDone`. Frames are written synchronously when there is no delay at all.
 */
function pace(ex: Exchange, frames: string[], firstDelay: number, delay: number, onDone: () => void): void {
  let i = 0;
  const step = (): void => {
    ex.timer = undefined;
    if (!writable(ex)) return;
    while (i < frames.length) {
      ex.res.write(frames[i++]);
      if (delay > 0 && i < frames.length) {
        ex.timer = setTimeout(step, delay);
        return;
      }
    }
    onDone();
  };
  if (firstDelay > 0) ex.timer = setTimeout(step, firstDelay);
  else step();
}

function startStream(ex: Exchange, s: Extract<MockScript, { kind: 'stream' }>, n: number): void {
  const frames = streamFrames(ex, n, s.tokens, s.toolCalls, s.finishReason, s.usage);
  // Headers go out at once, like a real provider that accepted the request.
  ex.res.writeHead(200, SSE_HEADERS);
  ex.res.flushHeaders();
  pace(ex, frames, s.firstTokenDelayMs ?? 0, s.delayMs ?? 0, () => {
    ex.rec.finished = true;
    ex.res.end(DONE);
  });
}

function startDyingStream(ex: Exchange, s: Extract<MockScript, { kind: 'die-mid-stream' }>, n: number): void {
  const frames = streamFrames(ex, n, s.tokens, undefined, undefined, undefined).slice(
    0,
    Math.min(s.afterTokens, s.tokens.length),
  );
  ex.res.writeHead(200, SSE_HEADERS);
  ex.res.flushHeaders();
  const die = (): void => {
    const socket = ex.res.socket;
    if (!socket) return;
    // Let the chunks already written reach the client before the connection is cut.
    if (socket.writableLength > 0) {
      socket.once('drain', die);
      return;
    }
    ex.killed = true;
    socket.destroy();
  };
  // setImmediate: the response uncorks the socket on nextTick; cut only after that.
  pace(ex, frames, s.delayMs ?? 0, s.delayMs ?? 0, () => setImmediate(die));
}

function parsePort(argv: string[]): number {
  const i = argv.indexOf('--port');
  const raw = i === -1 ? process.env['MOCK_UPSTREAM_PORT'] : argv[i + 1];
  const port = raw === undefined ? 0 : Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${raw}`);
  return port;
}

if (require.main === module) {
  void (async () => {
    const mock = await startMockUpstream({ port: parsePort(process.argv.slice(2)) });
    // biome-ignore lint/suspicious/noConsole: CLI output
    console.log(`MOCK_UPSTREAM_URL=${mock.baseUrl}`);
    const shutdown = (): void => {
      void mock.close().finally(() => process.exit(0));
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  })();
}
