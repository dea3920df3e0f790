import type { ModelConfig } from '../config/service-config';

export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** USD for one request from the catalogue prices (per 1M tokens); cached input at its own price. */
export function costUsd(model: Pick<ModelConfig, 'pricing'>, t: TokenCounts): number {
  const p = model.pricing;
  const cached = Math.min(t.cachedTokens, t.promptTokens);
  const cachedPrice = p.cachedInput ?? p.input;
  const usd =
    ((t.promptTokens - cached) * p.input + cached * cachedPrice + t.completionTokens * p.output) / 1_000_000;
  return roundUsd(usd);
}

/** Rounded to 1e-9 USD, so sums stay stable in DynamoDB and logs. */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}
