import { createHash } from 'node:crypto';
import { ClientAbortError } from '../../errors';
import { contentText, countPromptTokens, countTextTokens } from '../../tokens/count';
import { decodePieces, encode } from '../../tokens/o200k';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../wire/chat';
import type { EmbeddingInput, EmbeddingsCall, EmbeddingsResult } from '../../wire/embeddings';
import type { Provider, ProviderCallOptions } from '../types';

export interface SimulatorOptions {
  /** Delay before the first token. @default 150 */
  ttftMs?: number;
  /** Output speed. @default 80 */
  tokensPerSecond?: number;
  /** Embedding vector size. @default 256 */
  dimensions?: number;
}

const LABEL = "[Simulated response from Tollgate's built-in simulator; no upstream model is configured.]";

/**
 * The built-in model for running with no upstream: deterministic, clearly labelled text
 * that echoes the question, real token counts (o200k tokenizer), realistic timing.
 */
export class SimulatorProvider implements Provider {
  readonly family = 'simulator';
  private readonly ttftMs: number;
  private readonly interTokenMs: number;

  private readonly dimensions: number;

  constructor({
    ttftMs = 150,
    tokensPerSecond = 80,
    dimensions = SIMULATED_DIMENSIONS,
  }: SimulatorOptions = {}) {
    this.ttftMs = ttftMs;
    this.dimensions = dimensions;
    this.interTokenMs = 1000 / tokensPerSecond;
  }

  /** The answer text for a request: the same request always gets the same text. */
  static answer(body: ChatRequest): string {
    const lastUser = [...body.messages].reverse().find((m) => m.role === 'user');
    const question = contentText(lastUser?.content).replace(/\s+/g, ' ').trim();
    const shown = question.length > 300 ? `${question.slice(0, 300)}...` : question;
    return shown
      ? `${LABEL} You asked: "${shown}". A real model would answer here.`
      : `${LABEL} A real model would answer here.`;
  }

  private plan(body: ChatRequest) {
    let tokens = encode(SimulatorProvider.answer(body));
    const max = body.max_completion_tokens ?? body.max_tokens ?? undefined;
    let finish: 'stop' | 'length' = 'stop';
    if (typeof max === 'number' && tokens.length > max) {
      tokens = tokens.slice(0, max);
      finish = 'length';
    }
    const promptTokens = countPromptTokens(body.messages, body.tools);
    return { tokens, pieces: decodePieces(tokens), finish, promptTokens };
  }

  async complete(body: ChatRequest, opts: ProviderCallOptions): Promise<ChatCompletion> {
    const { tokens, pieces, finish, promptTokens } = this.plan(body);
    await sleep(this.ttftMs + this.interTokenMs * Math.max(0, tokens.length - 1), opts.signal);
    return {
      id: `chatcmpl-sim-${Date.now().toString(36)}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: pieces.join(''), refusal: null },
          finish_reason: finish,
          logprobs: null,
        },
      ],
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: tokens.length,
        total_tokens: promptTokens + tokens.length,
      },
    };
  }

  async embed(call: EmbeddingsCall, opts: ProviderCallOptions): Promise<EmbeddingsResult> {
    // Real embedding APIs answer in milliseconds, not at a token rate.
    await sleep(Math.min(this.ttftMs, 20), opts.signal);
    const dims = call.dimensions ?? this.dimensions;
    const itemTokens = call.input.map((it) => (typeof it === 'string' ? countTextTokens(it) : it.length));
    return {
      vectors: call.input.map((it) => simulatedEmbedding(it, dims)),
      promptTokens: itemTokens.reduce((a, b) => a + b, 0),
      itemTokens,
    };
  }

  async stream(body: ChatRequest, opts: ProviderCallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const { tokens, pieces, finish, promptTokens } = this.plan(body);
    const id = `chatcmpl-sim-${Date.now().toString(36)}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (
      delta: ChatCompletionChunk.Choice['delta'],
      finishReason: ChatCompletionChunk.Choice['finish_reason'] = null,
    ): ChatCompletionChunk => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
    });
    const { ttftMs, interTokenMs } = this;
    async function* gen(): AsyncGenerator<ChatCompletionChunk> {
      await sleep(ttftMs, opts.signal);
      for (let i = 0; i < pieces.length; i++) {
        if (i > 0) await sleep(interTokenMs, opts.signal);
        yield chunk(i === 0 ? { role: 'assistant', content: pieces[i] } : { content: pieces[i] });
      }
      yield chunk({}, finish);
      yield {
        id,
        object: 'chat.completion.chunk',
        created,
        model: body.model,
        choices: [],
        usage: {
          prompt_tokens: promptTokens,
          completion_tokens: tokens.length,
          total_tokens: promptTokens + tokens.length,
        },
      };
    }
    return gen();
  }
}

/** The simulator's vector size when neither the catalogue nor the request sets one. */
const SIMULATED_DIMENSIONS = 256;

/**
 * A deterministic unit vector for a text: the same input always gets the same vector, different
 * inputs get (almost surely) different ones, so search over it behaves like exact matching.
 */
export function simulatedEmbedding(item: EmbeddingInput, dimensions: number): Float32Array {
  const seed = createHash('sha256')
    .update(typeof item === 'string' ? `s${item}` : `t${item.join(',')}`)
    .digest();
  // xorshift32 from the digest: cheap, deterministic, good enough for a simulation.
  let x = seed.readUInt32LE(0) || 1;
  const v = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const f = (x >>> 0) / 0x1_0000_0000 - 0.5;
    v[i] = f;
    norm += f * f;
  }
  const scale = 1 / Math.sqrt(norm || 1);
  for (let i = 0; i < dimensions; i++) v[i] = (v[i] as number) * scale;
  return v;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(new ClientAbortError());
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(new ClientAbortError());
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
