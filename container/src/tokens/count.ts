import type { ChatMessage } from '../wire/chat';
import { countTokens } from './o200k';

const LONG_RUN = /\S{128,}|\s{128,}/;
const LONG_RUNS = /\S{128,}|\s{128,}/g;
const PIECE = 64;

/**
 * Tokens of one piece of text (o200k_base, what current OpenAI models use). BPE is quadratic
 * in the length of a word: 32k characters without a space took 2 s on one core, so a 1 MiB
 * body could stall the event loop (64,000 spaces took 11 s). The tokenizer bounds every piece
 * itself (o200k.ts); long runs of non-space, and of space, are also cut into 64-character
 * pieces here because that is cheaper still (1 MB of 'x': 125 ms against 246 ms), off by a few
 * tokens at the cuts, which only matters for text no model reads well.
 */
export function countTextTokens(text: string): number {
  if (text.length === 0) return 0;
  if (!LONG_RUN.test(text)) return countTokens(text);
  let n = 0;
  let last = 0;
  for (const m of text.matchAll(LONG_RUNS)) {
    const start = m.index ?? 0;
    if (start > last) n += countTokens(text.slice(last, start));
    const run = m[0];
    for (let i = 0; i < run.length; i += PIECE) n += countTokens(run.slice(i, i + PIECE));
    last = start + run.length;
  }
  if (last < text.length) n += countTokens(text.slice(last));
  return n;
}

/** Text of a message's content: a string, or the text parts of a content-part array. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) {
    if (part && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') {
      out += (out ? '\n' : '') + (part as { text: string }).text;
    }
  }
  return out;
}

/** Per-message framing overhead of the chat format (OpenAI's documented approximation). */
const PER_MESSAGE = 4;
const PER_REPLY = 3;
/** An image part costs at least this much; exact cost depends on detail and size. */
const IMAGE_PART_TOKENS = 85;

/** Prompt tokens of one message, content, name and tool calls included. */
export function countMessageTokens(m: ChatMessage): number {
  let n = PER_MESSAGE + countTextTokens(contentText(m.content));
  if (Array.isArray(m.content)) {
    for (const part of m.content) {
      if (part && typeof part === 'object' && (part as { type?: unknown }).type === 'image_url')
        n += IMAGE_PART_TOKENS;
    }
  }
  if (typeof m.name === 'string') n += countTextTokens(m.name);
  if (m.tool_calls) n += countTextTokens(JSON.stringify(m.tool_calls));
  return n;
}

/** Tokens of a request's tool definitions (0 without tools). */
export function countToolTokens(tools?: unknown): number {
  return tools ? countTextTokens(JSON.stringify(tools)) : 0;
}

/** Prompt tokens from each message's tokens (countMessageTokens) and the tools' tokens. */
export function promptTokensFrom(messageTokens: readonly number[], toolTokens = 0): number {
  let n = PER_REPLY + toolTokens;
  for (const t of messageTokens) n += t;
  return n;
}

/** Prompt tokens of a whole conversation (plus tools, when given). */
export function countPromptTokens(messages: ChatMessage[], tools?: unknown): number {
  return promptTokensFrom(messages.map(countMessageTokens), countToolTokens(tools));
}
