import { ClientAbortError } from '../../errors';
import { contentText, countPromptTokens } from '../../tokens/count';
import { decodePieces, encode } from '../../tokens/o200k';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../wire/chat';
import type { Provider, ProviderCallOptions } from '../types';

export interface SimulatorOptions {
  /** Delay before the first token. @default 150 */
  ttftMs?: number;
  /** Output speed. @default 80 */
  tokensPerSecond?: number;
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

  constructor({ ttftMs = 150, tokensPerSecond = 80 }: SimulatorOptions = {}) {
    this.ttftMs = ttftMs;
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
