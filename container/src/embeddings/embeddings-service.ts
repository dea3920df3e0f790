import type { CachedEmbedding, EmbeddingCache } from '../cache/embedding-cache';
import { isAllowed } from '../chat/prepare';
import { BadRequestError, PermissionDeniedError, UpstreamError } from '../errors';
import type { Principal } from '../keys/key-store';
import { type MeterDeps, MeteredCall, type MeteredCallOptions, tokenCount } from '../metering/metered-call';
import type { ModelRouter } from '../providers/router';
import { countTextTokens } from '../tokens/count';
import type { EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse } from '../wire/embeddings';
import { MAX_TOTAL_TOKENS } from './validate';

export interface EmbeddingsServiceDeps extends MeterDeps {
  router: ModelRouter;
  cache: EmbeddingCache | null;
}

/** The request's items in one shape: a string, or a token array. */
export function inputItems(input: EmbeddingsRequest['input']): EmbeddingInput[] {
  if (typeof input === 'string') return [input];
  if (input.length > 0 && typeof input[0] === 'number') return [input as number[]];
  return input as EmbeddingInput[];
}

/** Tokens of one item as the gateway counts them (token arrays count themselves). */
function itemTokens(item: EmbeddingInput): number {
  return typeof item === 'string' ? countTextTokens(item) : item.length;
}

/**
 * Split an upstream's total over the items it embedded, in proportion to the gateway's own
 * counts, so the parts add up to the total exactly (largest remainder).
 */
export function splitTokens(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (weights.length === 0) return [];
  if (sum === 0) return weights.map((_, i) => (i === 0 ? total : 0));
  const exact = weights.map((w) => (w * total) / sum);
  const out = exact.map(Math.floor);
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0]);
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) out[order[k]![1]]! += 1;
  return out;
}

/**
 * One embeddings call: the metered call plus the per-item cache (a batch that repeats earlier
 * inputs only sends the new ones upstream) and the router's embed path (fallbacks, retries,
 * concurrency, timeouts). Usage rows count the tokens that went upstream; the response's usage
 * counts every item as it was counted when it was embedded.
 */
export class EmbeddingsCall extends MeteredCall {
  private keys: string[] = [];
  private cached: (CachedEmbedding | null)[] = [];

  constructor(
    private readonly deps: EmbeddingsServiceDeps,
    principal: Principal,
    readonly body: EmbeddingsRequest,
    readonly items: EmbeddingInput[],
    readonly counts: number[],
    private readonly useCache: boolean,
    plan: ConstructorParameters<typeof MeteredCall>[2],
    opts: MeteredCallOptions,
  ) {
    super(deps, principal, plan, opts);
  }

  /** Admission and the cache lookup of every item, concurrently. */
  override async admit(): Promise<null> {
    const cache = this.deps.cache;
    if (!cache || !this.useCache) {
      await this.admitWith(null);
      return null;
    }
    this.keys = this.items.map((it) =>
      cache.key(this.principal.owner, this.modelId, this.body.dimensions, it),
    );
    const found = await this.admitWith(cache.getMany(this.keys));
    this.cached = found ?? [];
    // HIT only when every item came from the cache.
    this.cacheStatus = this.cached.length > 0 && this.cached.every((c) => c !== null) ? 'HIT' : 'MISS';
    return null;
  }

  /** Embed what the cache did not have, then answer in OpenAI's shape. */
  async run(): Promise<EmbeddingsResponse> {
    const vectors: (Float32Array | undefined)[] = this.items.map((_, i) => this.cached[i]?.vector);
    const tokens: number[] = this.items.map((_, i) => this.cached[i]?.tokens ?? 0);
    const missing = this.items.map((_, i) => i).filter((i) => vectors[i] === undefined);
    let billed = 0;
    if (missing.length > 0) {
      try {
        const { model, result } = await this.deps.router.embed(
          this.modelId,
          {
            model: this.modelId,
            input: missing.map((i) => this.items[i] as EmbeddingInput),
            dimensions: this.body.dimensions,
            user: this.body.user,
          },
          this.opts.signal,
        );
        this.servedBy(model.config);
        if (result.vectors.length !== missing.length) {
          throw new UpstreamError(
            `The upstream returned ${result.vectors.length} embeddings for ${missing.length} inputs.`,
          );
        }
        const ours = missing.map((i) => this.counts[i] as number);
        // An upstream that reports no usage is counted by the gateway.
        const upstreamTotal = tokenCount(result.promptTokens) ?? ours.reduce((a, b) => a + b, 0);
        const per =
          result.itemTokens?.length === missing.length &&
          result.itemTokens.every((t) => tokenCount(t) !== null)
            ? result.itemTokens
            : splitTokens(upstreamTotal, ours);
        const fresh: { key: string; value: CachedEmbedding }[] = [];
        missing.forEach((i, k) => {
          const vector = result.vectors[k] as Float32Array;
          vectors[i] = vector;
          tokens[i] = per[k] as number;
          if (this.keys[i])
            fresh.push({ key: this.keys[i] as string, value: { vector, tokens: per[k] as number } });
        });
        billed = upstreamTotal;
        this.markFirstToken();
        this.finish({
          status: 200,
          usage: { prompt_tokens: billed, completion_tokens: 0, total_tokens: billed },
        });
        if (fresh.length && this.deps.cache) await this.deps.cache.setMany(fresh);
      } catch (err) {
        this.fail(err);
        throw err;
      }
    } else {
      this.markFirstToken();
      this.finish({
        status: 200,
        usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
        cached: true,
      });
    }
    const base64 = this.body.encoding_format === 'base64';
    const total = tokens.reduce((a, b) => a + b, 0);
    return {
      object: 'list',
      data: vectors.map((v, index) => ({
        object: 'embedding' as const,
        index,
        embedding: base64 ? toBase64(v as Float32Array) : Array.from(v as Float32Array),
      })),
      model: this.modelId,
      usage: { prompt_tokens: total, total_tokens: total },
    };
  }
}

/** Little-endian float32, as OpenAI's `encoding_format: "base64"` (every AWS platform is little-endian). */
function toBase64(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

/** Entry point of `/v1/embeddings`: permission, model, token limits, the reservation. */
export class EmbeddingsService {
  constructor(readonly deps: EmbeddingsServiceDeps) {}

  begin(principal: Principal, body: EmbeddingsRequest, opts: MeteredCallOptions): EmbeddingsCall {
    const entry = this.deps.router.require(body.model, 'embeddings');
    if (!isAllowed(principal, entry.config.id)) {
      throw new PermissionDeniedError(`This API key is not allowed to use the model '${entry.config.id}'.`, {
        param: 'model',
        code: 'model_not_allowed',
      });
    }
    const m = entry.config;
    if (body.dimensions !== undefined && m.dimensions !== undefined && body.dimensions > m.dimensions) {
      throw new BadRequestError(
        `'dimensions' must be at most ${m.dimensions} for the model '${m.id}'; got ${body.dimensions}.`,
        { param: 'dimensions' },
      );
    }
    const items = inputItems(body.input);
    const counts = items.map(itemTokens);
    // One item (a string, or one token array) is `input` itself; in a list it is `input[i]`.
    const single = typeof body.input === 'string' || typeof (body.input as unknown[])[0] === 'number';
    counts.forEach((n, i) => {
      if (n > m.contextWindow) {
        const param = single ? 'input' : `input[${i}]`;
        throw new BadRequestError(
          `'${param}' is ${n} tokens; the model '${m.id}' takes at most ${m.contextWindow} tokens per input.`,
          { param, code: 'context_length_exceeded' },
        );
      }
    });
    const promptTokens = counts.reduce((a, b) => a + b, 0);
    if (promptTokens > MAX_TOTAL_TOKENS) {
      throw new BadRequestError(
        `'input' has ${promptTokens} tokens in all; at most ${MAX_TOTAL_TOKENS} are allowed per request.`,
        { param: 'input', code: 'context_length_exceeded' },
      );
    }
    const useCache = this.deps.cache?.usable(opts.cacheControl) ?? false;
    return new EmbeddingsCall(
      this.deps,
      principal,
      body,
      items,
      counts,
      useCache,
      {
        endpoint: 'embeddings',
        model: m,
        stream: false,
        promptTokens,
        reserveTokens: promptTokens,
        reserveCostUsd: (promptTokens * m.pricing.input) / 1_000_000,
      },
      opts,
    );
  }
}
