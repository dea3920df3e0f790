import { randomUUID } from 'node:crypto';
import {
  type BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  type ConverseStreamOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { UpstreamError } from '../../errors';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../wire/chat';
import type { EmbeddingsCall, EmbeddingsResult } from '../../wire/embeddings';
import type { Provider, ProviderCallOptions } from '../types';
import { toConverse } from './chat-request';
import { toCompletion } from './chat-response';
import { bedrockEmbed, type CohereInputType } from './embeddings';
import { type BedrockTarget, mapBedrockError } from './errors';
import { type Deadline, deadline, withRetries } from './retry';
import { StreamTranslator } from './stream';

export interface BedrockProviderOptions {
  /** The region's client, shared by every entry in the region. */
  readonly client: BedrockRuntimeClient;
  readonly region: string;
  /** Cohere embed models' `input_type`. @default search_document */
  readonly inputType?: CohereInputType | undefined;
}

/**
 * One Bedrock catalogue entry: chat through Converse / ConverseStream, embeddings through
 * InvokeModel. Requests are translated before any call, so a request Bedrock could not take
 * is a 400 naming the field without a round trip.
 */
export class BedrockProvider implements Provider {
  readonly family = 'bedrock';

  constructor(private readonly o: BedrockProviderOptions) {}

  private target(model: string): BedrockTarget {
    return { model, region: this.o.region };
  }

  async complete(body: ChatRequest, opts: ProviderCallOptions): Promise<ChatCompletion> {
    const call = toConverse(body);
    const d = deadline(opts.signal, opts.timeoutMs);
    try {
      const { result } = await withRetries(opts, d, this.target(body.model), (ac) =>
        this.o.client.send(new ConverseCommand(call.input), { abortSignal: ac.signal }),
      );
      return toCompletion(call, result, result.$metadata.requestId ?? randomUUID());
    } finally {
      d.clear();
    }
  }

  async stream(body: ChatRequest, opts: ProviderCallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const call = toConverse(body);
    const to = this.target(body.model);
    // The deadline covers the wait for the first chunk; after it the router's idle timeout
    // takes over (a long answer must not be cut at the first deadline).
    const d = deadline(opts.signal, opts.timeoutMs);
    let opened: Opened;
    try {
      const r = await withRetries(opts, d, to, (ac) => openStream(this.o.client, call, ac));
      opened = { ...r.result, ac: r.ac };
    } catch (err) {
      d.clear();
      throw err;
    }
    d.stopTimer();
    return relay(opened, d, to, opts.signal);
  }

  embed(call: EmbeddingsCall, opts: ProviderCallOptions): Promise<EmbeddingsResult> {
    return bedrockEmbed(
      { client: this.o.client, region: this.o.region, inputType: this.o.inputType ?? 'search_document' },
      call,
      opts,
    );
  }
}

interface Opened {
  events: AsyncIterator<ConverseStreamOutput>;
  tr: StreamTranslator;
  first: ChatCompletionChunk;
  ac: AbortController;
}

/**
 * Send ConverseStream and read up to the first chunk, so that an exception frame Bedrock sends
 * before any output (throttling under load) is retried or falls back like an HTTP error.
 */
async function openStream(
  client: BedrockRuntimeClient,
  call: ReturnType<typeof toConverse>,
  ac: AbortController,
): Promise<Omit<Opened, 'ac'>> {
  const out = await client.send(new ConverseStreamCommand(call.input), { abortSignal: ac.signal });
  if (!out.stream) throw new UpstreamError('Amazon Bedrock answered ConverseStream without a stream.');
  const id = `chatcmpl-${out.$metadata.requestId ?? randomUUID()}`;
  const tr = new StreamTranslator(call, id, Math.floor(Date.now() / 1000));
  const events = out.stream[Symbol.asyncIterator]();
  for (;;) {
    const n = await events.next();
    if (n.done) throw new UpstreamError('The Bedrock stream ended before the model produced anything.');
    const first = tr.translate(n.value);
    if (first) return { events, tr, first };
  }
}

async function* relay(
  o: Opened,
  d: Deadline,
  to: BedrockTarget,
  signal: AbortSignal,
): AsyncGenerator<ChatCompletionChunk> {
  let complete = false;
  try {
    yield o.first;
    for (;;) {
      const n = await o.events.next();
      if (n.done) break;
      const c = o.tr.translate(n.value);
      if (c) yield c;
    }
    if (!o.tr.stopped) throw new UpstreamError('The Bedrock stream ended before the answer was complete.');
    complete = true;
  } catch (err) {
    throw mapBedrockError(err, to, signal);
  } finally {
    d.clear();
    // Left early (client gone, idle timeout, failure): reset the HTTP/2 stream.
    if (!complete) o.ac.abort();
  }
}
