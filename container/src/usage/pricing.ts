import type { Pricing } from '../providers/catalogue';

export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens read from the provider's prompt cache (part of promptTokens). */
  cachedTokens: number;
  /** Prompt tokens written to the provider's prompt cache (part of promptTokens). @default 0 */
  cacheWriteTokens?: number;
}

/**
 * USD for one request from the catalogue prices (per 1M tokens): cache reads at `cachedInput`,
 * cache writes at `cacheWrite` (each defaulting to `input`), the rest of the prompt at `input`.
 */
export function costUsd(model: { pricing: Pricing }, t: TokenCounts): number {
  const p = model.pricing;
  const cached = Math.min(t.cachedTokens, t.promptTokens);
  const written = Math.min(t.cacheWriteTokens ?? 0, t.promptTokens - cached);
  const plain = t.promptTokens - cached - written;
  const usd =
    (plain * p.input +
      cached * (p.cachedInput ?? p.input) +
      written * (p.cacheWrite ?? p.input) +
      t.completionTokens * p.output) /
    1_000_000;
  return roundUsd(usd);
}

/** Rounded to 1e-9 USD, so sums stay stable in DynamoDB and logs. */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}
