import type { z } from 'zod';
import type { DependencyCheck } from '../telemetry/health';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../wire/chat';
import type { EmbeddingsCall, EmbeddingsResult } from '../wire/embeddings';

/** Per-call settings the router passes to a provider. */
export interface ProviderCallOptions {
  /** Aborts the upstream call (client disconnect, drain, deadline). */
  signal: AbortSignal;
  /** Per attempt: until the answer (non-stream) or between chunks (stream). */
  timeoutMs: number;
  maxRetries: number;
}

/**
 * A model provider. Closed interface: the router only ever calls these. Errors thrown are
 * `ApiError`s (400 for a request the upstream refused, 502/503/504 for upstream trouble) or
 * `ClientAbortError`; never a family's own error classes.
 */
export interface Provider {
  /** The family that built it (for logs). */
  readonly family: string;
  /** A complete (non-streaming) answer. `body.model` is already the upstream model name. */
  complete(body: ChatRequest, opts: ProviderCallOptions): Promise<ChatCompletion>;
  /**
   * A stream of chunks. The promise settles once the upstream accepted the request, so
   * failures before that can still be retried or fall back. The last chunk carries usage
   * (`choices: []`), whatever the client asked for.
   */
  stream(body: ChatRequest, opts: ProviderCallOptions): Promise<AsyncIterable<ChatCompletionChunk>>;
  /** Embeddings, for families that serve them (`endpoints: ["embeddings"]`). */
  embed?(call: EmbeddingsCall, opts: ProviderCallOptions): Promise<EmbeddingsResult>;
}

/** What a family is given to build its providers. */
export interface FamilyContext {
  /** The process environment (API keys named by `apiKeyEnv`, the AWS SDK's own variables). */
  readonly env: NodeJS.ProcessEnv;
  /** OPENAI_BASE_URL: the base URL of `openai` entries that give none. */
  readonly defaultBaseUrl?: string | undefined;
}

/** A family's providers for its catalogue entries, with their readiness checks. */
export interface BuiltFamily {
  /** The provider of each of the family's catalogue ids. */
  readonly providers: ReadonlyMap<string, Provider>;
  /** Cheap checks for `/ready` (one per upstream, region...). */
  readonly checks: readonly DependencyCheck[];
  /** Releases clients and connection pools. */
  close?(): Promise<void>;
}

/** The shape of a family's catalogue entry schema: a strict object with `provider` as a literal. */
export type FamilySchema = z.ZodObject<{ provider: z.ZodLiteral<string> } & z.ZodRawShape>;

/**
 * A provider family: a folder under `providers/` that declares its catalogue entry schema and
 * builds providers for its entries. The registry lists the families; nothing else names one.
 */
export interface ProviderFamily<S extends FamilySchema = FamilySchema> {
  /** The `provider` value of the family's catalogue entries. */
  readonly name: z.infer<S>['provider'];
  /** The catalogue entry schema, made with `familyModelSchema(name, { ...own fields })`. */
  readonly schema: S;
  /** Providers for the family's entries (clients shared where the family can). */
  build(models: readonly z.infer<S>[], ctx: FamilyContext): BuiltFamily;
  /**
   * When the config has no catalogue: a way to list the upstream's models as raw catalogue
   * entries (validated by the caller), or null when the environment names no such upstream
   * (the OPENAI_BASE_URL shortcut).
   */
  discover?(ctx: FamilyContext): ((signal: AbortSignal) => Promise<unknown[]>) | null;
}
