import type { ModelConfig, ServiceConfig } from '../config/service-config';
import { BadRequestError, PermissionDeniedError } from '../errors';
import type { Principal } from '../keys/key-store';
import type { ModelEntry, ModelRouter } from '../providers/router';
import { contentText, countMessageTokens, countToolTokens, promptTokensFrom } from '../tokens/count';
import type { ChatMessage, ChatRequest } from '../wire/chat';

const CODE_SHAPES = /```|\b(function|def|class|import|return|const|let|var|public|static)\b[^\n]*[({;:]/;

export function isAllowed(p: Principal, modelId: string): boolean {
  return p.models.includes('*') || p.models.includes(modelId);
}

/** `model: "auto"`: the first rule matching the caller's tier and the prompt's size/shape. */
export function routeAuto(
  cfg: ServiceConfig,
  router: ModelRouter,
  p: Principal,
  messages: ChatMessage[],
  promptTokens: number,
): string {
  let code: boolean | undefined;
  for (const rule of cfg.auto.rules) {
    if (rule.tiers && !rule.tiers.includes(p.tier)) continue;
    if (rule.minPromptTokens !== undefined && promptTokens < rule.minPromptTokens) continue;
    if (rule.codeHeavy) {
      code ??= messages.some((m) => CODE_SHAPES.test(contentText(m.content)));
      if (!code) continue;
    }
    if (router.serves(rule.model, 'chat') && isAllowed(p, rule.model)) return rule.model;
  }
  if (cfg.auto.default && isAllowed(p, cfg.auto.default)) return cfg.auto.default;
  const first = router.list().find((e) => e.config.endpoints.includes('chat') && isAllowed(p, e.config.id));
  if (!first)
    throw new PermissionDeniedError('No model is available to this API key.', {
      code: 'model_not_allowed',
      param: 'model',
    });
  return first.config.id;
}

/**
 * Keep the system/developer messages and the most recent turns that fit `budget` tokens,
 * dropping the middle. An assistant turn with tool calls goes together with its tool results.
 */
export function trimMessages(messages: ChatMessage[], budget: number): ChatMessage[] | null {
  const keep = keepWithin(messages, messages.map(countMessageTokens), budget);
  return keep && messages.filter((_, i) => keep[i]);
}

/** Which messages trimMessages keeps, from each message's tokens; null when nothing fits. */
function keepWithin(messages: ChatMessage[], costs: readonly number[], budget: number): boolean[] | null {
  let total = promptTokensFrom(costs);
  if (total <= budget) return messages.map(() => true);
  const keep = messages.map(() => true);
  // The last message always stays; when it is a tool result, so do the results before it and
  // the assistant turn that made the calls (a tool result without its call is a 400 upstream).
  let pinned = messages.length - 1;
  if (messages[pinned]?.role === 'tool') {
    while (pinned > 0 && messages[pinned]?.role === 'tool') pinned--;
  }
  for (let i = 0; i < messages.length && total > budget; i++) {
    const m = messages[i] as ChatMessage;
    if (m.role === 'system' || m.role === 'developer' || i >= pinned || !keep[i]) continue;
    keep[i] = false;
    total -= costs[i] as number;
    // Tool results that answered this turn's calls cannot stay without it.
    for (let j = i + 1; j < pinned && messages[j]?.role === 'tool'; j++) {
      if (keep[j]) {
        keep[j] = false;
        total -= costs[j] as number;
      }
    }
  }
  return total > budget ? null : keep;
}

export interface Prepared {
  body: ChatRequest;
  entry: ModelEntry;
  promptTokens: number;
  /** Tokens reserved at admission: prompt + the most the completion may use. */
  reserveTokens: number;
  /** USD reserved at admission (worst case). */
  reserveCostUsd: number;
  trimmed: boolean;
}

function maxOutput(body: ChatRequest): number | undefined {
  const v = body.max_completion_tokens ?? body.max_tokens;
  return typeof v === 'number' ? v : undefined;
}

/** Model routing, permission, max_tokens cap, context fitting and the reservation estimate. */
export function prepareRequest(
  cfg: ServiceConfig,
  router: ModelRouter,
  p: Principal,
  input: ChatRequest,
): Prepared {
  let body: ChatRequest = input;
  // Each message is tokenized once, also when the conversation has to be trimmed.
  const messageTokens = body.messages.map(countMessageTokens);
  const toolTokens = countToolTokens(body.tools);
  let promptTokens = promptTokensFrom(messageTokens, toolTokens);
  if (body.model === 'auto')
    body = { ...body, model: routeAuto(cfg, router, p, body.messages, promptTokens) };
  const entry = router.require(body.model, 'chat');
  if (!isAllowed(p, entry.config.id)) {
    throw new PermissionDeniedError(`This API key is not allowed to use the model '${entry.config.id}'.`, {
      param: 'model',
      code: 'model_not_allowed',
    });
  }
  const m: ModelConfig = entry.config;
  const cap = p.maxTokensCap;
  let requested = maxOutput(body);
  if (cap !== undefined && (requested === undefined || requested > cap)) {
    const field = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
    body = { ...body, [field]: cap };
    requested = cap;
  }
  let trimmed = false;
  const budget = m.contextWindow - (requested ?? 0);
  if (promptTokens > budget) {
    const overflowMessage = `This model's maximum context length is ${m.contextWindow} tokens; the messages use ${promptTokens}${requested ? ` plus ${requested} for the completion` : ''}. Shorten the messages or lower max_tokens.`;
    if (cfg.contextOverflow === 'reject') {
      throw new BadRequestError(overflowMessage, { param: 'messages', code: 'context_length_exceeded' });
    }
    const keep = keepWithin(body.messages, messageTokens, budget - toolTokens);
    if (!keep)
      throw new BadRequestError(overflowMessage, { param: 'messages', code: 'context_length_exceeded' });
    body = { ...body, messages: body.messages.filter((_, i) => keep[i]) };
    promptTokens = promptTokensFrom(
      messageTokens.filter((_, i) => keep[i]),
      toolTokens,
    );
    trimmed = true;
  }
  const out = Math.min(requested ?? m.maxOutputTokens, Math.max(1, m.contextWindow - promptTokens));
  const reserveTokens = promptTokens + out;
  const reserveCostUsd = (promptTokens * m.pricing.input + out * m.pricing.output) / 1_000_000;
  return { body, entry, promptTokens, reserveTokens, reserveCostUsd, trimmed };
}
