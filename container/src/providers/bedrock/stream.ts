import type { ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import type { ChatCompletionChunk } from '../../wire/chat';
import type { ConverseCall } from './chat-request';
import { finishReason, toUsage } from './chat-response';

type Delta = ChatCompletionChunk.Choice.Delta & { reasoning_content?: string };

/** A streamed tool call: its dense OpenAI index and whether any argument bytes went out. */
interface ToolSlot {
  index: number;
  sentArgs: boolean;
}

/**
 * ConverseStream events -> OpenAI chunks, one event at a time (at most one chunk per event).
 *
 * Bedrock numbers content blocks across text, reasoning and tool use (text 0, tools 1 and 2;
 * or reasoning 0, text 1, tool 2), and OpenAI clients index tool calls 0..n-1 in an array, so
 * each tool block gets the next dense index when it starts; its first delta carries `id`,
 * `type: "function"` and the name, the later ones argument fragments. `messageStart` sends
 * nothing of its own: the role rides on the first chunk with content, so the stream commits
 * (and time to first token is measured) when the model produced something.
 */
export class StreamTranslator {
  private roleSent = false;
  /** Tool blocks by Bedrock's contentBlockIndex; null for a block left out of the answer. */
  private readonly tools = new Map<number, ToolSlot | null>();
  private nextTool = 0;
  /** `messageStop` arrived (a stream that ends before it was cut short). */
  stopped = false;

  constructor(
    private readonly call: ConverseCall,
    private readonly id: string,
    private readonly created: number,
  ) {}

  private chunk(
    delta: Delta,
    finish: ChatCompletionChunk.Choice['finish_reason'] = null,
  ): ChatCompletionChunk {
    if (!this.roleSent) {
      this.roleSent = true;
      delta.role = 'assistant';
    }
    return {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.call.input.modelId,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    };
  }

  /** The chunk for one event, or null when the event has nothing for the client. */
  translate(ev: ConverseStreamOutput): ChatCompletionChunk | null {
    if (ev.contentBlockDelta) {
      const d = ev.contentBlockDelta.delta;
      if (!d) return null;
      if (typeof d.text === 'string') return d.text ? this.chunk({ content: d.text }) : null;
      if (d.toolUse) {
        const slot = this.tools.get(ev.contentBlockDelta.contentBlockIndex ?? -1);
        const args = d.toolUse.input ?? '';
        if (!slot || !args) return null;
        slot.sentArgs = true;
        return this.chunk({ tool_calls: [{ index: slot.index, function: { arguments: args } }] });
      }
      const reasoning = d.reasoningContent?.text;
      return reasoning ? this.chunk({ reasoning_content: reasoning }) : null;
    }
    if (ev.contentBlockStart) {
      const tu = ev.contentBlockStart.start?.toolUse;
      if (!tu) return null;
      const block = ev.contentBlockStart.contentBlockIndex ?? -1;
      const name = tu.name ?? '';
      if (name === this.call.placeholderTool || (this.call.singleToolCall && this.nextTool >= 1)) {
        this.tools.set(block, null);
        return null;
      }
      const slot: ToolSlot = { index: this.nextTool++, sentArgs: false };
      this.tools.set(block, slot);
      return this.chunk({
        tool_calls: [
          {
            index: slot.index,
            id: tu.toolUseId ?? '',
            type: 'function',
            function: { name: this.call.names.original(name), arguments: '' },
          },
        ],
      });
    }
    if (ev.contentBlockStop) {
      // A call without arguments: `{}` rather than "", so clients can parse what they get.
      const slot = this.tools.get(ev.contentBlockStop.contentBlockIndex ?? -1);
      if (!slot || slot.sentArgs) return null;
      slot.sentArgs = true;
      return this.chunk({ tool_calls: [{ index: slot.index, function: { arguments: '{}' } }] });
    }
    if (ev.messageStop) {
      this.stopped = true;
      const reason = ev.messageStop.stopReason;
      const c = this.chunk(this.roleSent ? {} : { content: '' }, finishReason(reason, this.nextTool > 0));
      (
        c.choices[0] as ChatCompletionChunk.Choice & { native_finish_reason?: string | null }
      ).native_finish_reason = reason ?? null;
      return c;
    }
    if (ev.metadata) {
      if (!ev.metadata.usage) return null;
      return {
        id: this.id,
        object: 'chat.completion.chunk',
        created: this.created,
        model: this.call.input.modelId,
        choices: [],
        usage: toUsage(ev.metadata.usage),
      };
    }
    return null;
  }
}
