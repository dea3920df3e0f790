/** `POST /v1/embeddings` as OpenAI defines it, and what a provider is asked and answers. */

/** One input item: text, or tokens (o200k/cl100k ids as the client tokenized them). */
export type EmbeddingInput = string | number[];

/** A validated embeddings request (the wire shape). */
export interface EmbeddingsRequest {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
  [extra: string]: unknown;
}

/** What the router hands a provider: the items still to embed, in order. */
export interface EmbeddingsCall {
  /** The upstream model name. */
  model: string;
  input: EmbeddingInput[];
  dimensions?: number | undefined;
  user?: string | undefined;
}

/**
 * A provider's answer: one vector per input item, in order (float32, as every embedding API
 * computes them; the openai SDK decodes base64 to the same values), and the tokens the upstream
 * counted.
 */
export interface EmbeddingsResult {
  vectors: Float32Array[];
  /** Input tokens of the whole call, as the upstream counted them (undefined: it did not say). */
  promptTokens: number | undefined;
  /** Per item, when the upstream says (Bedrock Titan does); else split by the gateway. */
  itemTokens?: number[] | undefined;
}

/** One embedding in the response. */
export interface Embedding {
  object: 'embedding';
  index: number;
  /** Floats, or base64 of little-endian float32 when `encoding_format: "base64"`. */
  embedding: number[] | string;
}

export interface EmbeddingsResponse {
  object: 'list';
  data: Embedding[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}
