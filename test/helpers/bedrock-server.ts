/**
 * A scripted Amazon Bedrock runtime on loopback, speaking the real protocol to the real
 * `@aws-sdk/client-bedrock-runtime` (point it here with AWS_ENDPOINT_URL_BEDROCK_RUNTIME):
 * Converse (JSON), ConverseStream (`application/vnd.amazon.eventstream` frames encoded by
 * `@smithy/eventstream-codec`, CRCs included, every frame split across two writes), exception
 * frames, InvokeModel for Titan and Cohere embeddings, and HTTP errors with
 * `x-amzn-errortype`. One port serves HTTP/2 (h2c, what the SDK speaks) and HTTP/1.1: the
 * first bytes of a connection say which.
 *
 * Run directly (`tsx test/helpers/bedrock-server.ts --port 0`) it prints
 * `AWS_ENDPOINT_URL_BEDROCK_RUNTIME=<url>` and serves until SIGINT/SIGTERM.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  createServer as createHttp2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { fromUtf8, toUtf8 } from '@smithy/util-utf8';

/** Usage as Bedrock reports it (`totalTokens` filled in). */
export interface BedrockUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens?: number;
  cacheWriteInputTokens?: number;
}

/** A tool call the scripted model makes; streamed, `input` goes out in `fragments`. */
export interface ScriptedToolUse {
  toolUseId: string;
  name: string;
  input: Record<string, unknown>;
  /** The raw JSON text streamed as argument deltas (default: `JSON.stringify(input)` in two). */
  fragments?: string[];
}

/** What the server does with one request. */
export type BedrockScript =
  | {
      kind: 'reply';
      /** Default: a fixed greeting (none when `toolUses` is set). */
      text?: string;
      reasoning?: string;
      toolUses?: ScriptedToolUse[];
      /** Default: tool_use when `toolUses` is set, else end_turn. */
      stopReason?: string;
      usage?: BedrockUsage;
      delayMs?: number;
    }
  | {
      kind: 'stream';
      /** Text deltas, in order. */
      text?: string[];
      reasoning?: string[];
      toolUses?: ScriptedToolUse[];
      stopReason?: string;
      usage?: BedrockUsage;
      firstEventDelayMs?: number;
      /** Between events. */
      delayMs?: number;
      /** After this many events, an exception frame instead of the rest. */
      failAfter?: { events: number; exception: string; message?: string };
      /** After this many events, end the response without the rest (no exception). */
      endAfter?: number;
      /** Leave out the final metadata (usage) event. */
      omitMetadata?: boolean;
      /** Write every frame in two pieces (the client must reassemble them). @default true */
      splitFrames?: boolean;
    }
  | {
      kind: 'error';
      /** The modelled error, e.g. `ThrottlingException`. */
      type: string;
      /** Default: Bedrock's status for the type. */
      status?: number;
      message?: string;
      headers?: Record<string, string>;
    }
  /** Accepts the request and never answers until the client goes away or the server closes. */
  | { kind: 'hang' }
  /** InvokeModel answers (embeddings); the default computes deterministic vectors. */
  | { kind: 'embed'; dimensions?: number; tokenCount?: number; delayMs?: number };

export type BedrockOperation = 'converse' | 'converse-stream' | 'invoke';

/** One request the server received. */
export interface BedrockRequest {
  operation: BedrockOperation;
  /** The decoded model id, inference profile id or ARN from the path. */
  modelId: string;
  path: string;
  /** `2.0` or `1.1`. */
  httpVersion: string;
  headers: Record<string, string | string[] | undefined>;
  /** The decoded JSON body (the Converse request, or the InvokeModel payload). */
  body: Record<string, unknown>;
  /** The client went away before the response was complete. */
  aborted: boolean;
  /** The whole response was handed to the transport. */
  finished: boolean;
  /** Response bytes written, and how many writes they took (frames are split on purpose). */
  writes: number;
  /** Event-stream frames sent. */
  frames: number;
}

export interface BedrockServer {
  /** `http://127.0.0.1:PORT`, the value for AWS_ENDPOINT_URL_BEDROCK_RUNTIME. */
  readonly url: string;
  readonly port: number;
  readonly requests: BedrockRequest[];
  /** Most requests open at once since start / the last reset. */
  readonly peakInFlight: number;
  /** Queue scripts for a model id (`'*'`: any model whose own queue is empty). */
  enqueue(modelId: string, ...scripts: BedrockScript[]): void;
  /** The script used when the queues are empty (`'*'`: any model). */
  setDefault(modelId: string, script: BedrockScript): void;
  reset(): void;
  /** Resolves once `n` requests arrived since start / the last reset. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_TEXT = 'Hello from the Bedrock test server.';

/** Bedrock's HTTP status for each modelled error. */
const STATUS: Record<string, number> = {
  ValidationException: 400,
  AccessDeniedException: 403,
  ResourceNotFoundException: 404,
  ThrottlingException: 429,
  ModelNotReadyException: 429,
  ModelTimeoutException: 408,
  ModelErrorException: 424,
  ServiceQuotaExceededException: 400,
  ConflictException: 400,
  InternalServerException: 500,
  ServiceUnavailableException: 503,
  UnrecognizedClientException: 403,
};

const codec = new EventStreamCodec(toUtf8, fromUtf8);

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

interface Exchange {
  rec: BedrockRequest;
  res: Res;
  timers: Set<NodeJS.Timeout>;
  closed: boolean;
  /** The server ended the response (HTTP/2's compat response reports every close as finished). */
  ended: boolean;
}

function later(ex: Exchange, ms: number, fn: () => void): void {
  const t = setTimeout(() => {
    ex.timers.delete(t);
    if (!ex.closed) fn();
  }, ms);
  ex.timers.add(t);
}

function textOfMessages(body: Record<string, unknown>): string {
  let out = '';
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) for (const x of v) visit(x);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'text' && typeof x === 'string') out += `${x} `;
        else if (k !== 'bytes') visit(x);
      }
    }
  };
  visit(body.messages);
  visit(body.system);
  return out;
}

function words(s: string): number {
  return s.split(/\s+/).filter(Boolean).length;
}

function defaultUsage(body: Record<string, unknown>, output: string): BedrockUsage {
  return {
    inputTokens: Math.max(1, Math.ceil(textOfMessages(body).length / 4)),
    outputTokens: Math.max(1, words(output)),
  };
}

function usageJson(u: BedrockUsage): Record<string, number> {
  const total =
    u.inputTokens + u.outputTokens + (u.cacheReadInputTokens ?? 0) + (u.cacheWriteInputTokens ?? 0);
  return { ...u, totalTokens: total };
}

function sendJson(
  ex: Exchange,
  status: number,
  payload: unknown,
  headers: Record<string, string> = {},
): void {
  if (ex.closed) return;
  const text = JSON.stringify(payload);
  ex.res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'x-amzn-requestid': randomUUID(),
    ...headers,
  });
  ex.rec.writes++;
  ex.ended = true;
  ex.res.end(text);
}

function sendError(ex: Exchange, s: Extract<BedrockScript, { kind: 'error' }>): void {
  sendJson(
    ex,
    s.status ?? STATUS[s.type] ?? 400,
    { message: s.message ?? `Scripted ${s.type}` },
    {
      'x-amzn-errortype': `${s.type}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
      ...s.headers,
    },
  );
}

function reply(ex: Exchange, s: Extract<BedrockScript, { kind: 'reply' }>): void {
  const content: unknown[] = [];
  if (s.reasoning)
    content.push({ reasoningContent: { reasoningText: { text: s.reasoning, signature: 'sig' } } });
  const text = s.text ?? (s.toolUses ? undefined : DEFAULT_TEXT);
  if (text !== undefined) content.push({ text });
  for (const t of s.toolUses ?? [])
    content.push({ toolUse: { toolUseId: t.toolUseId, name: t.name, input: t.input } });
  const output = (text ?? '') + (s.toolUses ?? []).map((t) => JSON.stringify(t.input)).join(' ');
  sendJson(ex, 200, {
    output: { message: { role: 'assistant', content } },
    stopReason: s.stopReason ?? (s.toolUses ? 'tool_use' : 'end_turn'),
    usage: usageJson(s.usage ?? defaultUsage(ex.rec.body, output)),
    metrics: { latencyMs: 1 },
  });
}

function frame(type: string, payload: unknown): Uint8Array {
  return codec.encode({
    headers: {
      ':event-type': { type: 'string', value: type },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'event' },
    },
    body: fromUtf8(JSON.stringify(payload)),
  });
}

function exceptionFrame(exception: string, message: string): Uint8Array {
  const payload: Record<string, unknown> = { message };
  if (exception === 'modelStreamErrorException') {
    payload.originalStatusCode = 500;
    payload.originalMessage = message;
  }
  return codec.encode({
    headers: {
      ':exception-type': { type: 'string', value: exception },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'exception' },
    },
    body: fromUtf8(JSON.stringify(payload)),
  });
}

function halves(s: string): string[] {
  if (s.length < 2) return [s];
  const cut = Math.ceil(s.length / 2);
  return [s.slice(0, cut), s.slice(cut)];
}

/** The ConverseStream events of a script, in Bedrock's order and block numbering. */
function streamEvents(
  s: Extract<BedrockScript, { kind: 'stream' }>,
  body: Record<string, unknown>,
): Uint8Array[] {
  const events: Uint8Array[] = [frame('messageStart', { role: 'assistant' })];
  let block = 0;
  if (s.reasoning?.length) {
    for (const r of s.reasoning)
      events.push(
        frame('contentBlockDelta', { contentBlockIndex: block, delta: { reasoningContent: { text: r } } }),
      );
    events.push(
      frame('contentBlockDelta', {
        contentBlockIndex: block,
        delta: { reasoningContent: { signature: 'sig' } },
      }),
    );
    events.push(frame('contentBlockStop', { contentBlockIndex: block }));
    block++;
  }
  const text = s.text ?? (s.toolUses ? [] : [DEFAULT_TEXT]);
  if (text.length > 0) {
    for (const t of text)
      events.push(frame('contentBlockDelta', { contentBlockIndex: block, delta: { text: t } }));
    events.push(frame('contentBlockStop', { contentBlockIndex: block }));
    block++;
  }
  let toolText = '';
  for (const t of s.toolUses ?? []) {
    events.push(
      frame('contentBlockStart', {
        contentBlockIndex: block,
        start: { toolUse: { toolUseId: t.toolUseId, name: t.name } },
      }),
    );
    const fragments = t.fragments ?? halves(JSON.stringify(t.input));
    for (const f of fragments)
      events.push(frame('contentBlockDelta', { contentBlockIndex: block, delta: { toolUse: { input: f } } }));
    events.push(frame('contentBlockStop', { contentBlockIndex: block }));
    toolText += fragments.join('');
    block++;
  }
  events.push(
    frame('messageStop', { stopReason: s.stopReason ?? (s.toolUses?.length ? 'tool_use' : 'end_turn') }),
  );
  if (!s.omitMetadata) {
    const usage = s.usage ?? defaultUsage(body, `${text.join('')} ${toolText}`);
    events.push(frame('metadata', { usage: usageJson(usage), metrics: { latencyMs: 1 } }));
  }
  return events;
}

function stream(ex: Exchange, s: Extract<BedrockScript, { kind: 'stream' }>): void {
  let events = streamEvents(s, ex.rec.body);
  if (s.failAfter) {
    events = [
      ...events.slice(0, s.failAfter.events),
      exceptionFrame(s.failAfter.exception, s.failAfter.message ?? `Scripted ${s.failAfter.exception}`),
    ];
  } else if (s.endAfter !== undefined) {
    events = events.slice(0, s.endAfter);
  }
  ex.res.writeHead(200, {
    'content-type': 'application/vnd.amazon.eventstream',
    'x-amzn-requestid': randomUUID(),
  });
  // Every frame goes out in two writes, the second half a tick later, so the client has to
  // reassemble frames from partial reads.
  let i = 0;
  const next = (): void => {
    if (ex.closed) return;
    if (i >= events.length) {
      ex.ended = true;
      ex.res.end();
      return;
    }
    const f = events[i++] as Uint8Array;
    const after = (): void => {
      ex.rec.frames++;
      const delay = i < events.length ? (s.delayMs ?? 0) : 0;
      if (delay > 0) later(ex, delay, next);
      else setImmediate(next);
    };
    if (s.splitFrames === false) {
      (ex.res as NodeJS.WritableStream).write(f);
      ex.rec.writes++;
      after();
      return;
    }
    const cut = Math.max(1, Math.floor(f.length / 2));
    (ex.res as NodeJS.WritableStream).write(f.subarray(0, cut));
    ex.rec.writes++;
    setImmediate(() => {
      if (ex.closed) return;
      (ex.res as NodeJS.WritableStream).write(f.subarray(cut));
      ex.rec.writes++;
      after();
    });
  };
  if (s.firstEventDelayMs) later(ex, s.firstEventDelayMs, next);
  else next();
}

/** The deterministic unit vector the server answers for a text. */
export function embedding(text: string, dims: number): number[] {
  const v = new Array<number>(dims).fill(0);
  for (let i = 0; i < text.length; i++)
    v[i % dims] = (v[i % dims] as number) + ((text.charCodeAt(i) * (i + 1)) % 97) + 1;
  const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0)) || 1;
  return v.map((x) => x / norm);
}

function invoke(ex: Exchange, s: Extract<BedrockScript, { kind: 'embed' }>): void {
  const body = ex.rec.body;
  if (/cohere\.embed/.test(ex.rec.modelId)) {
    const texts = Array.isArray(body.texts) ? (body.texts as string[]) : [];
    if (texts.length === 0 || texts.length > 96 || typeof body.input_type !== 'string') {
      sendError(ex, {
        kind: 'error',
        type: 'ValidationException',
        message: 'Malformed input request: texts, input_type',
      });
      return;
    }
    const dims = s.dimensions ?? (typeof body.output_dimension === 'number' ? body.output_dimension : 8);
    const tokens = s.tokenCount ?? texts.reduce((a, t) => a + words(t), 0);
    sendJson(
      ex,
      200,
      {
        id: randomUUID(),
        embeddings: texts.map((t) => embedding(t, dims)),
        response_type: 'embeddings_floats',
        texts,
      },
      { 'x-amzn-bedrock-input-token-count': String(tokens) },
    );
    return;
  }
  if (typeof body.inputText !== 'string') {
    sendError(ex, {
      kind: 'error',
      type: 'ValidationException',
      message: 'Malformed input request: inputText',
    });
    return;
  }
  const dims = s.dimensions ?? (typeof body.dimensions === 'number' ? body.dimensions : 8);
  const tokens = s.tokenCount ?? words(body.inputText);
  sendJson(
    ex,
    200,
    { embedding: embedding(body.inputText, dims), inputTextTokenCount: tokens },
    { 'x-amzn-bedrock-input-token-count': String(tokens) },
  );
}

const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * The conversation rules Bedrock enforces with a ValidationException (its messages), so that
 * a translation that breaks one fails here as it would against the real service.
 */
export function converseViolation(body: Record<string, unknown>): string | null {
  const messages = Array.isArray(body.messages) ? (body.messages as Array<Record<string, unknown>>) : [];
  if (messages.length === 0 || messages[0]?.role !== 'user')
    return 'A conversation must start with a user message.';
  let toolBlocks = false;
  let previousUses = new Set<string>();
  for (const [i, m] of messages.entries()) {
    if (i > 0 && messages[i - 1]?.role === m.role)
      return 'A conversation must alternate between user and assistant roles.';
    const content = Array.isArray(m.content) ? (m.content as Array<Record<string, unknown>>) : [];
    if (content.length === 0) return `The content field in the Message object at messages.${i} is empty.`;
    const uses = new Set<string>();
    let results = 0;
    for (const [j, b] of content.entries()) {
      if (typeof b.text === 'string' && b.text.trim() === '')
        return `The text field in the ContentBlock object at messages.${i}.content.${j} is blank.`;
      const tu = b.toolUse as Record<string, unknown> | undefined;
      if (tu) {
        toolBlocks = true;
        if (!NAME.test(String(tu.name)) || !NAME.test(String(tu.toolUseId)))
          return `Value at messages.${i}.content.${j}.toolUse failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+`;
        if (typeof tu.input !== 'object' || tu.input === null || Array.isArray(tu.input))
          return `The toolUse input at messages.${i}.content.${j} must be a JSON object.`;
        uses.add(String(tu.toolUseId));
      }
      const tr = b.toolResult as Record<string, unknown> | undefined;
      if (tr) {
        toolBlocks = true;
        results++;
        if (!previousUses.has(String(tr.toolUseId)))
          return `The toolResult block at messages.${i}.content.${j} has no matching toolUse in the previous turn.`;
      }
    }
    if (results > previousUses.size)
      return `The number of toolResult blocks at messages.${i}.content exceeds the number of toolUse blocks of previous turn.`;
    previousUses = uses;
  }
  const tools = (body.toolConfig as { tools?: Array<{ toolSpec?: { name?: string } }> } | undefined)?.tools;
  if (toolBlocks && !tools?.length)
    return 'The toolConfig field must be defined when using toolUse and toolResult content blocks.';
  for (const t of tools ?? [])
    if (!NAME.test(String(t.toolSpec?.name)))
      return 'Value at toolConfig.tools.member.toolSpec.name failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+';
  return null;
}

/** A catalogue entry for a Bedrock model served here, with short test-friendly timeouts. */
export function bedrockModel(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    provider: 'bedrock',
    region: 'us-east-1',
    pricing: { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75 },
    contextWindow: 8192,
    maxOutputTokens: 256,
    timeoutMs: 2000,
    maxRetries: 0,
    ...overrides,
  };
}

const ROUTE = /^\/model\/([^/]+)\/(converse-stream|converse|invoke)$/;

export async function startBedrockServer(opts: { port?: number } = {}): Promise<BedrockServer> {
  const queues = new Map<string, BedrockScript[]>();
  const defaults = new Map<string, BedrockScript>();
  const requests: BedrockRequest[] = [];
  const open = new Set<Exchange>();
  let peak = 0;
  let waiters: Array<{ n: number; resolve: () => void }> = [];

  const pick = (model: string, op: BedrockOperation): BedrockScript => {
    const own = queues.get(model);
    if (own?.length) return own.shift()!;
    const any = queues.get('*');
    if (any?.length) return any.shift()!;
    return (
      defaults.get(model) ??
      defaults.get('*') ??
      (op === 'invoke' ? { kind: 'embed' } : op === 'converse' ? { kind: 'reply' } : { kind: 'stream' })
    );
  };

  const handle = (req: Req, res: Res): void => {
    const url = req.url ?? '/';
    const path = url.split('?')[0] ?? '/';
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => undefined);
    req.on('end', () => {
      const m = ROUTE.exec(path);
      let body: Record<string, unknown> = {};
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed))
          body = parsed as Record<string, unknown>;
      } catch {
        body = {};
      }
      const rec: BedrockRequest = {
        operation: (m?.[2] ?? 'converse') as BedrockOperation,
        modelId: m ? decodeURIComponent(m[1] as string) : '',
        path,
        httpVersion: req.httpVersion,
        headers: req.headers,
        body,
        aborted: false,
        finished: false,
        writes: 0,
        frames: 0,
      };
      const ex: Exchange = { rec, res, timers: new Set(), closed: false, ended: false };
      open.add(ex);
      peak = Math.max(peak, open.size);
      res.on('close', () => {
        ex.closed = true;
        open.delete(ex);
        for (const t of ex.timers) clearTimeout(t);
        if (ex.ended) rec.finished = true;
        else rec.aborted = true;
      });
      if (!m || req.method !== 'POST') {
        sendJson(
          ex,
          404,
          { message: `Unknown operation ${req.method} ${path}` },
          {
            'x-amzn-errortype': 'UnknownOperationException',
          },
        );
        return;
      }
      requests.push(rec);
      const ready = waiters.filter((w) => w.n <= requests.length);
      waiters = waiters.filter((w) => w.n > requests.length);
      for (const w of ready) w.resolve();
      const script = pick(rec.modelId, rec.operation);
      // Scripted errors stand for what Bedrock checks first (auth, access, throttling); then the
      // conversation rules, like Bedrock's own validation.
      const violation =
        rec.operation === 'invoke' || script.kind === 'error' ? null : converseViolation(body);
      if (violation) {
        sendError(ex, { kind: 'error', type: 'ValidationException', message: violation });
        return;
      }
      switch (script.kind) {
        case 'error':
          sendError(ex, script);
          return;
        case 'hang':
          return;
        case 'embed':
          if (rec.operation !== 'invoke') break;
          if (script.delayMs) later(ex, script.delayMs, () => invoke(ex, script));
          else invoke(ex, script);
          return;
        case 'reply':
          if (rec.operation !== 'converse') break;
          if (script.delayMs) later(ex, script.delayMs, () => reply(ex, script));
          else reply(ex, script);
          return;
        case 'stream':
          if (rec.operation !== 'converse-stream') break;
          stream(ex, script);
          return;
      }
      sendError(ex, {
        kind: 'error',
        type: 'InternalServerException',
        message: `test server: a '${script.kind}' script does not answer ${rec.operation}`,
      });
    });
  };

  const h2 = createHttp2Server();
  h2.on('request', handle);
  h2.on('sessionError', () => undefined);
  const h1 = createHttp1Server(handle);
  h1.keepAliveTimeout = 30_000;
  const sockets = new Set<Socket>();
  const PREFACE = 'PRI * HTTP/2.0';
  const net = createNetServer((socket) => {
    sockets.add(socket);
    // What http.Server does for the sockets it accepts itself: no Nagle delay on small writes.
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('readable', function sniff() {
      const head: Buffer | null = socket.read();
      if (head === null) {
        socket.once('readable', sniff);
        return;
      }
      socket.unshift(head);
      const h2c =
        head.subarray(0, PREFACE.length).toString('latin1') ===
        PREFACE.slice(0, Math.min(PREFACE.length, head.length));
      (h2c ? h2 : h1).emit('connection', socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    net.once('error', reject);
    net.listen(opts.port ?? 0, '127.0.0.1', () => {
      net.off('error', reject);
      resolve();
    });
  });
  const port = (net.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    get peakInFlight() {
      return peak;
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
      requests.length = 0;
      peak = open.size;
    },
    waitForRequests(n, timeoutMs = 5000) {
      if (requests.length >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          reject(
            new Error(`bedrock test server: got ${requests.length} of ${n} requests within ${timeoutMs} ms`),
          );
        }, timeoutMs);
        const waiter = {
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        waiters.push(waiter);
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const ex of open) for (const t of ex.timers) clearTimeout(t);
        net.close(() => resolve());
        for (const s of sockets) s.destroy();
        h1.closeAllConnections();
      });
      return closing;
    },
  };
}

function parsePort(argv: string[]): number {
  const i = argv.indexOf('--port');
  const raw = i === -1 ? process.env['BEDROCK_SERVER_PORT'] : argv[i + 1];
  const port = raw === undefined ? 0 : Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${raw}`);
  return port;
}

if (require.main === module) {
  void (async () => {
    const server = await startBedrockServer({ port: parsePort(process.argv.slice(2)) });
    // biome-ignore lint/suspicious/noConsole: CLI output
    console.log(`AWS_ENDPOINT_URL_BEDROCK_RUNTIME=${server.url}`);
    const shutdown = (): void => {
      void server.close().finally(() => process.exit(0));
    };
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  })();
}
