import { countMessageTokens, countPromptTokens } from '../tokens/count';
import type { ChatMessage } from '../wire/chat';
import type { StoredMessage } from './conversation-store';

/** The chat message a stored message becomes in the prompt (no timestamp, no token count). */
export function toChatMessage(m: StoredMessage): ChatMessage {
  return { role: m.role, content: m.content };
}

/** Prompt tokens of a stored message: the count saved at write time, else counted now. */
export function storedMessageTokens(m: StoredMessage): number {
  return m.tokens ?? countMessageTokens(toChatMessage(m));
}

/**
 * Tokens left for history in a prompt of `system + history + user`: the model's context
 * window minus the completion reservation, the system prompt, the new message and the
 * reply framing. Negative when the system prompt and the new message alone do not fit.
 */
export function historyBudget(opts: {
  contextWindow: number;
  completionTokens: number;
  system: ChatMessage;
  user: ChatMessage;
}): number {
  return opts.contextWindow - opts.completionTokens - countPromptTokens([opts.system, opts.user]);
}

/**
 * The most recent stored messages whose tokens fit `budget`, oldest first. Recency wins: the
 * walk stops at the first message that does not fit rather than skipping it for older, smaller
 * ones, so the model never sees a conversation with a hole in the middle. A window that would
 * open on a reply whose question fell out is started at the next user message instead.
 */
export function selectHistory(history: readonly StoredMessage[], budget: number): StoredMessage[] {
  let used = 0;
  let start = history.length;
  for (let i = history.length - 1; i >= 0; i--) {
    const cost = storedMessageTokens(history[i] as StoredMessage);
    if (used + cost > budget) break;
    used += cost;
    start = i;
  }
  while (start < history.length && history[start]?.role !== 'user') start++;
  return history.slice(start);
}
