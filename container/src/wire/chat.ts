import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions';

export type { ChatCompletion, ChatCompletionChunk };

/** One message as clients send it (validated loosely: content may be a string or parts). */
export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool' | 'function';
  content?: unknown;
  name?: string;
  tool_calls?: unknown[];
  tool_call_id?: string;
  [extra: string]: unknown;
}

/** A validated chat completion request; unknown fields are kept and passed upstream. */
export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean; [k: string]: unknown } | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  n?: number | null;
  [extra: string]: unknown;
}

export type Usage = NonNullable<ChatCompletion['usage']>;
