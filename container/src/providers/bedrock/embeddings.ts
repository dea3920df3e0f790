import { type BedrockRuntimeClient, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime';
import { BadRequestError, UpstreamError } from '../../errors';
import type { EmbeddingsCall, EmbeddingsResult } from '../../wire/embeddings';
import type { ProviderCallOptions } from '../types';
import type { BedrockTarget } from './errors';
import { deadline, withRetries } from './retry';

/** The request body shapes Bedrock's embedding models take. */
export type EmbeddingApi = 'titan' | 'cohere';

/** Cohere's `input_type`: what the texts are for (queries and documents embed differently). */
export const COHERE_INPUT_TYPES = [
  'search_document',
  'search_query',
  'classification',
  'clustering',
] as const;
export type CohereInputType = (typeof COHERE_INPUT_TYPES)[number];

/** Titan takes one text per call: that many calls in flight per request. */
export const TITAN_CONCURRENCY = 8;
/** Cohere's limit of texts per call. */
export const COHERE_BATCH = 96;
const COHERE_CONCURRENCY = 4;

/** Which body an embedding model id takes (model ids, inference profile ids and ARNs naming one). */
export function embeddingApi(model: string): EmbeddingApi | null {
  if (/cohere\.embed/i.test(model)) return 'cohere';
  if (/amazon\.titan-embed/i.test(model)) return 'titan';
  return null;
}

export interface EmbedOptions {
  readonly client: BedrockRuntimeClient;
  readonly region: string;
  readonly inputType: CohereInputType;
}

/** One InvokeModel call: the JSON answer and the input tokens Bedrock counted (its header). */
async function invoke(
  o: EmbedOptions,
  model: string,
  payload: Record<string, unknown>,
  opts: ProviderCallOptions,
): Promise<{ body: Record<string, unknown>; inputTokens: number | undefined }> {
  const to: BedrockTarget = { model, region: o.region };
  const d = deadline(opts.signal, opts.timeoutMs);
  try {
    const { result } = await withRetries(opts, d, to, async (ac) => {
      const cmd = new InvokeModelCommand({
        modelId: model,
        body: JSON.stringify(payload),
        contentType: 'application/json',
        accept: 'application/json',
      });
      let inputTokens: number | undefined;
      // The count is only in a response header, which the command's output leaves out.
      cmd.middlewareStack.add(
        (next) => async (args) => {
          const r = await next(args);
          const raw = (r.response as { headers?: Record<string, string | undefined> }).headers?.[
            'x-amzn-bedrock-input-token-count'
          ];
          const n = Number(raw);
          if (raw !== undefined && Number.isInteger(n) && n >= 0) inputTokens = n;
          return r;
        },
        { step: 'deserialize', name: 'tollgateInputTokenCount' },
      );
      const out = await o.client.send(cmd, { abortSignal: ac.signal });
      return { out, inputTokens };
    });
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(result.out.body ?? new Uint8Array()).toString('utf8'));
    } catch {
      throw new UpstreamError(`Amazon Bedrock sent a malformed embeddings answer for '${model}'.`);
    }
    if (typeof body !== 'object' || body === null)
      throw new UpstreamError(`Amazon Bedrock sent a malformed embeddings answer for '${model}'.`);
    return { body: body as Record<string, unknown>, inputTokens: result.inputTokens };
  } finally {
    d.clear();
  }
}

function vector(v: unknown, model: string): Float32Array {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number'))
    throw new UpstreamError(`Amazon Bedrock sent an embedding that is not a list of numbers for '${model}'.`);
  return Float32Array.from(v as number[]);
}

function count(n: unknown): number | undefined {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** `fn` over `items` with at most `limit` calls in flight; the first failure stops the rest. */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal,
  fn: (item: T, i: number, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  const ac = new AbortController();
  const onParent = () => ac.abort(signal.reason);
  if (signal.aborted) onParent();
  else signal.addEventListener('abort', onParent, { once: true });
  let next = 0;
  let failure: { err: unknown } | null = null;
  const worker = async () => {
    while (!failure && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T, i, ac.signal);
      } catch (err) {
        // The first failure is the answer; the calls it aborts fail after it.
        failure ??= { err };
        ac.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  } finally {
    signal.removeEventListener('abort', onParent);
  }
  if (failure) throw (failure as { err: unknown }).err;
  return out;
}

function texts(call: EmbeddingsCall): string[] {
  return call.input.map((item) => {
    if (typeof item === 'string') return item;
    // `input`, not `input[i]`: the call holds only the items the cache did not have.
    throw new BadRequestError(
      "'input' holds token arrays; Amazon Bedrock embedding models take text only (their tokenizers are not OpenAI's).",
      { param: 'input' },
    );
  });
}

/**
 * Embeddings through InvokeModel: Titan one text per call (fanned out, at most
 * {@link TITAN_CONCURRENCY} at once, each counting its own tokens), Cohere in batches of up to
 * {@link COHERE_BATCH} texts with the entry's `input_type` (tokens from Bedrock's count
 * header). Vectors come back in input order; a count Bedrock did not give is left to the
 * gateway.
 */
export async function bedrockEmbed(
  o: EmbedOptions,
  call: EmbeddingsCall,
  opts: ProviderCallOptions,
): Promise<EmbeddingsResult> {
  const inputs = texts(call);
  const api = embeddingApi(call.model);
  if (api === 'titan') {
    const items = await mapLimit(inputs, TITAN_CONCURRENCY, opts.signal, async (inputText, _i, signal) => {
      const payload: Record<string, unknown> = { inputText };
      if (call.dimensions !== undefined) payload.dimensions = call.dimensions;
      const { body, inputTokens } = await invoke(o, call.model, payload, { ...opts, signal });
      return {
        vector: vector(body.embedding, call.model),
        tokens: count(body.inputTextTokenCount) ?? inputTokens,
      };
    });
    const counts = items.map((x) => x.tokens);
    // Counts only when Bedrock gave every one (the gateway counts otherwise).
    const itemTokens = counts.every((t) => t !== undefined) ? (counts as number[]) : undefined;
    return {
      vectors: items.map((x) => x.vector),
      promptTokens: itemTokens?.reduce((a, b) => a + b, 0),
      itemTokens,
    };
  }
  if (api === 'cohere') {
    const batches: string[][] = [];
    for (let i = 0; i < inputs.length; i += COHERE_BATCH) batches.push(inputs.slice(i, i + COHERE_BATCH));
    const answers = await mapLimit(batches, COHERE_CONCURRENCY, opts.signal, async (batch, _i, signal) => {
      const payload: Record<string, unknown> = { texts: batch, input_type: o.inputType };
      if (call.dimensions !== undefined) payload.output_dimension = call.dimensions;
      const { body, inputTokens } = await invoke(o, call.model, payload, { ...opts, signal });
      // v3 answers a list of vectors; with embedding types (v4) an object of lists by type.
      const raw = body.embeddings;
      const list = Array.isArray(raw) ? raw : (raw as { float?: unknown } | undefined)?.float;
      if (!Array.isArray(list) || list.length !== batch.length) {
        throw new UpstreamError(
          `Amazon Bedrock answered ${Array.isArray(list) ? list.length : 'no'} embeddings for ${batch.length} texts ('${call.model}').`,
        );
      }
      return {
        vectors: list.map((v) => vector(v, call.model)),
        tokens: inputTokens,
        single: batch.length === 1,
      };
    });
    const vectors = answers.flatMap((a) => a.vectors);
    const known = answers.every((a) => a.tokens !== undefined);
    const promptTokens = known ? answers.reduce((a, b) => a + (b.tokens as number), 0) : undefined;
    // Per-item counts are only known when every batch held one text.
    const itemTokens =
      known && answers.every((a) => a.single) ? answers.map((a) => a.tokens as number) : undefined;
    return { vectors, promptTokens, itemTokens };
  }
  throw new BadRequestError(
    `The Bedrock model '${call.model}' is neither a Titan nor a Cohere embedding model; the gateway embeds with amazon.titan-embed-* and cohere.embed-* models.`,
    { param: 'model' },
  );
}
