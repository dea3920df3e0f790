import type { ContentBlock, ConverseResponse, TokenUsage } from '@aws-sdk/client-bedrock-runtime';
import type { ChatCompletion, Usage } from '../../wire/chat';
import type { ConverseCall } from './chat-request';

/** OpenAI's finish reasons, as `ChatCompletion` types them. */
export type FinishReason = ChatCompletion.Choice['finish_reason'];

/**
 * Bedrock's nine stop reasons. The two `malformed_*` ones end a turn the model got wrong; the
 * answer still holds what was generated and Bedrock bills it, so it is delivered (and billed)
 * rather than turned into an error: `malformed_tool_use` reads as `tool_calls` when a tool call
 * survived, else `stop`; `malformed_model_output` as `stop`. Each choice also carries Bedrock's
 * own reason as `native_finish_reason` (OpenRouter's name) so clients can tell.
 */
export function finishReason(stopReason: string | undefined, hasToolCalls: boolean): FinishReason {
  switch (stopReason) {
    case 'end_turn':
    case 'stop_sequence':
      return 'stop';
    // A tool_use turn whose calls were all removed (the stand-in tool) ends as text.
    case 'tool_use':
    case 'malformed_tool_use':
      return hasToolCalls ? 'tool_calls' : 'stop';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'guardrail_intervened':
    case 'content_filtered':
      return 'content_filter';
    default:
      // malformed_model_output, and any reason Bedrock adds later.
      return 'stop';
  }
}

/**
 * The usage extension every family reports: `prompt_tokens` counts all input (uncached,
 * cache reads and cache writes), `cached_tokens` the reads and `cache_write_tokens` the writes.
 */
export type BedrockUsage = Usage & {
  prompt_tokens_details: { cached_tokens: number; cache_write_tokens: number };
};

function count(n: number | undefined): number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : 0;
}

export function toUsage(u: TokenUsage | undefined): BedrockUsage {
  const read = count(u?.cacheReadInputTokens);
  const write = count(u?.cacheWriteInputTokens);
  const prompt = count(u?.inputTokens) + read + write;
  const completion = count(u?.outputTokens);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: read, cache_write_tokens: write },
  };
}

type ToolCall = NonNullable<ChatCompletion.Choice['message']['tool_calls']>[number];

/** A Converse answer as an OpenAI chat completion. */
export function toCompletion(call: ConverseCall, out: ConverseResponse, requestId: string): ChatCompletion {
  const blocks: ContentBlock[] = out.output?.message?.content ?? [];
  let text = '';
  let reasoning = '';
  const toolCalls: ToolCall[] = [];
  for (const b of blocks) {
    if (typeof b.text === 'string') text += b.text;
    else if (b.reasoningContent?.reasoningText?.text) reasoning += b.reasoningContent.reasoningText.text;
    else if (b.toolUse) {
      const name = b.toolUse.name ?? '';
      if (name === call.placeholderTool) continue;
      if (call.singleToolCall && toolCalls.length === 1) continue;
      toolCalls.push({
        id: b.toolUse.toolUseId ?? '',
        type: 'function',
        function: { name: call.names.original(name), arguments: JSON.stringify(b.toolUse.input ?? {}) },
      });
    }
  }
  const message: ChatCompletion.Choice['message'] & { reasoning_content?: string } = {
    role: 'assistant',
    content: text || (toolCalls.length > 0 ? null : ''),
    refusal: null,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  if (reasoning) message.reasoning_content = reasoning;
  const choice = {
    index: 0,
    message,
    finish_reason: finishReason(out.stopReason, toolCalls.length > 0),
    logprobs: null,
    native_finish_reason: out.stopReason ?? null,
  };
  return {
    id: `chatcmpl-${requestId}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: call.input.modelId,
    choices: [choice],
    // Without Bedrock's usage the gateway counts the answer itself (and marks it estimated).
    ...(out.usage ? { usage: toUsage(out.usage) } : {}),
  };
}
