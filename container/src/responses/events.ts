/**
 * Chat completion chunks -> the Responses API's named SSE events, in the order OpenAI sends
 * them, each with its `sequence_number`:
 *
 *   response.created, response.in_progress,
 *   per message:  response.output_item.added, response.content_part.added,
 *                 response.output_text.delta ... response.output_text.done,
 *                 response.content_part.done, response.output_item.done
 *   per call:     response.output_item.added, response.function_call_arguments.delta ...
 *                 response.function_call_arguments.done, response.output_item.done
 *   then response.completed (or response.incomplete when the output was cut, or
 *   response.failed when the upstream failed after the first event).
 */
import type { ChatCompletionChunk } from '../wire/chat';
import type {
  OutputItem,
  Response,
  ResponseFunctionToolCallItem,
  ResponseOutputMessage,
  ResponseStreamEvent,
  ResponseUsage,
} from '../wire/responses';
import { statusOf } from './translate';

/** The state a Response snapshot is built from at each lifecycle event. */
export interface SnapshotState {
  status: 'in_progress' | 'completed' | 'incomplete' | 'failed';
  output: OutputItem[];
  usage: ResponseUsage | null;
  incomplete_details?: Response['incomplete_details'];
  error?: Response['error'];
}

type ItemPrefix = 'msg' | 'fc';

interface OpenMessage {
  index: number;
  item: ResponseOutputMessage;
  /** The content part being streamed into, if any. */
  part: { index: number; type: 'output_text' | 'refusal'; text: string } | null;
}

interface ToolState {
  callId: string;
  name: string;
  args: string;
  /** Set once output_item.added went out. */
  index: number | null;
  item: ResponseFunctionToolCallItem | null;
  closed: boolean;
}

/**
 * Builds the event sequence of one streamed response. Feed it chunks (or text and tool-call
 * pieces), then `complete()` or `fail()`; every method returns the events to send, in order.
 */
export class ResponseEventStream {
  private seq = 0;
  private readonly output: OutputItem[] = [];
  private message: OpenMessage | null = null;
  private readonly tools = new Map<number, ToolState>();
  private openTool: ToolState | null = null;
  private finishReason: string | null = null;
  private ended = false;

  /**
   * @param snapshot the Response object for a state (the route echoes its request there).
   * @param newId a fresh item id for a message or function call, in output order.
   */
  constructor(
    private readonly snapshot: (s: SnapshotState) => Response,
    private readonly newId: (prefix: ItemPrefix) => string,
  ) {}

  /** Output items so far (what a client disconnect or failure leaves). */
  get items(): readonly OutputItem[] {
    return this.output;
  }

  private event<T extends ResponseStreamEvent['type']>(
    type: T,
    fields: Omit<Extract<ResponseStreamEvent, { type: T }>, 'type' | 'sequence_number'>,
  ): ResponseStreamEvent {
    return { type, sequence_number: this.seq++, ...fields } as unknown as ResponseStreamEvent;
  }

  /** `response.created` and `response.in_progress`. */
  start(): ResponseStreamEvent[] {
    const r = this.snapshot({ status: 'in_progress', output: [], usage: null });
    return [
      this.event('response.created', { response: r }),
      this.event('response.in_progress', { response: r }),
    ];
  }

  /** The events for one chat chunk. */
  chunk(c: ChatCompletionChunk): ResponseStreamEvent[] {
    const ch = c.choices[0];
    if (!ch) return [];
    const out: ResponseStreamEvent[] = [];
    const d = ch.delta;
    if (typeof d?.content === 'string' && d.content !== '') this.text('output_text', d.content, out);
    const refusal = (d as { refusal?: unknown } | undefined)?.refusal;
    if (typeof refusal === 'string' && refusal !== '') this.text('refusal', refusal, out);
    for (const t of d?.tool_calls ?? []) {
      this.toolCall(t.index, { id: t.id, name: t.function?.name, args: t.function?.arguments }, out);
    }
    if (ch.finish_reason) this.finishReason = ch.finish_reason;
    return out;
  }

  /** Text (or refusal text) into the current message, opening one if needed. */
  text(
    kind: 'output_text' | 'refusal',
    delta: string,
    out: ResponseStreamEvent[] = [],
  ): ResponseStreamEvent[] {
    this.closeTool(out);
    let m = this.message;
    if (!m) {
      const item: ResponseOutputMessage = {
        id: this.newId('msg'),
        type: 'message',
        status: 'in_progress',
        content: [],
        role: 'assistant',
      };
      m = { index: this.output.length, item, part: null };
      this.message = m;
      this.output.push(item);
      out.push(this.event('response.output_item.added', { output_index: m.index, item: clone(item) }));
    }
    if (m.part && m.part.type !== kind) this.closePart(m, out);
    if (!m.part) {
      m.part = { index: m.item.content.length, type: kind, text: '' };
      const part =
        kind === 'output_text'
          ? { type: 'output_text' as const, text: '', annotations: [], logprobs: [] }
          : { type: 'refusal' as const, refusal: '' };
      m.item.content.push(part);
      out.push(
        this.event('response.content_part.added', {
          item_id: m.item.id,
          output_index: m.index,
          content_index: m.part.index,
          part: clone(part),
        }),
      );
    }
    if (delta === '') return out;
    m.part.text += delta;
    out.push(
      kind === 'output_text'
        ? this.event('response.output_text.delta', {
            item_id: m.item.id,
            output_index: m.index,
            content_index: m.part.index,
            delta,
            logprobs: [],
          })
        : this.event('response.refusal.delta', {
            item_id: m.item.id,
            output_index: m.index,
            content_index: m.part.index,
            delta,
          }),
    );
    return out;
  }

  /**
   * A piece of a tool call (chat `delta.tool_calls[i]`). The item opens once its call id and
   * name are known (OpenAI sends them first; buffered otherwise), and closes when the next call
   * or text starts.
   */
  toolCall(
    index: number,
    piece: { id?: string | undefined; name?: string | undefined; args?: string | undefined },
    out: ResponseStreamEvent[] = [],
  ): ResponseStreamEvent[] {
    let t = this.tools.get(index);
    if (!t) {
      t = { callId: '', name: '', args: '', index: null, item: null, closed: false };
      this.tools.set(index, t);
    }
    if (piece.id) t.callId = piece.id;
    if (piece.name && t.index === null) t.name += piece.name;
    const args = piece.args ?? '';
    if (t.closed || t.item) {
      // After output_item.added: deltas; after the item closed (a late piece from an upstream
      // that interleaves calls): kept on the item so the final response is whole.
      t.args += args;
      if (t.item) t.item.arguments = t.args;
      if (!t.closed && args && t.index !== null)
        out.push(
          this.event('response.function_call_arguments.delta', {
            item_id: t.item!.id,
            output_index: t.index,
            delta: args,
          }),
        );
      return out;
    }
    t.args += args;
    if (t.callId && t.name) this.openToolItem(t, out);
    return out;
  }

  private openToolItem(t: ToolState, out: ResponseStreamEvent[]): void {
    this.closeMessage(out);
    this.closeTool(out);
    const item: ResponseFunctionToolCallItem = {
      id: this.newId('fc'),
      type: 'function_call',
      status: 'in_progress',
      arguments: '',
      call_id: t.callId || `call_${this.newId('fc').slice(3)}`,
      name: t.name,
    };
    t.callId = item.call_id;
    t.index = this.output.length;
    t.item = item;
    this.output.push(item);
    this.openTool = t;
    out.push(this.event('response.output_item.added', { output_index: t.index, item: clone(item) }));
    if (t.args) {
      item.arguments = t.args;
      out.push(
        this.event('response.function_call_arguments.delta', {
          item_id: item.id,
          output_index: t.index,
          delta: t.args,
        }),
      );
    }
  }

  private closePart(m: OpenMessage, out: ResponseStreamEvent[]): void {
    const p = m.part;
    if (!p) return;
    const common = { item_id: m.item.id, output_index: m.index, content_index: p.index };
    const part =
      p.type === 'output_text'
        ? { type: 'output_text' as const, text: p.text, annotations: [], logprobs: [] }
        : { type: 'refusal' as const, refusal: p.text };
    m.item.content[p.index] = part;
    out.push(
      p.type === 'output_text'
        ? this.event('response.output_text.done', { ...common, text: p.text, logprobs: [] })
        : this.event('response.refusal.done', { ...common, refusal: p.text }),
    );
    out.push(this.event('response.content_part.done', { ...common, part: clone(part) }));
    m.part = null;
  }

  private closeMessage(
    out: ResponseStreamEvent[],
    status: ResponseOutputMessage['status'] = 'completed',
  ): void {
    const m = this.message;
    if (!m) return;
    this.closePart(m, out);
    m.item.status = status;
    out.push(this.event('response.output_item.done', { output_index: m.index, item: clone(m.item) }));
    this.message = null;
  }

  private closeTool(
    out: ResponseStreamEvent[],
    status: ResponseFunctionToolCallItem['status'] = 'completed',
  ): void {
    const t = this.openTool;
    if (!t?.item || t.index === null) return;
    t.item.arguments = t.args;
    t.item.status = status;
    out.push(
      this.event('response.function_call_arguments.done', {
        item_id: t.item.id,
        output_index: t.index,
        arguments: t.args,
      }),
    );
    out.push(this.event('response.output_item.done', { output_index: t.index, item: clone(t.item) }));
    t.closed = true;
    this.openTool = null;
  }

  /**
   * Close what is open and end with `response.completed`, or `response.incomplete` when the
   * chat finish reason says the output was cut. Returns the final Response too.
   */
  complete(usage: ResponseUsage): { events: ResponseStreamEvent[]; response: Response } {
    const out: ResponseStreamEvent[] = [];
    const { status, incomplete_details } = statusOf(this.finishReason);
    const itemStatus = status === 'completed' ? 'completed' : 'incomplete';
    // Calls whose id or name never came: opened now so nothing the model produced is lost.
    for (const t of this.tools.values()) if (!t.item && !t.closed) this.openToolItem(t, out);
    this.closeMessage(out, itemStatus);
    this.closeTool(out, itemStatus);
    if (this.output.length === 0) {
      // A model that said nothing still answers with one (empty) message, as OpenAI's do.
      this.text('output_text', '', out);
      this.closeMessage(out, itemStatus);
    }
    const response = this.snapshot({ status, output: this.output, usage, incomplete_details });
    out.push(
      status === 'completed'
        ? this.event('response.completed', { response })
        : this.event('response.incomplete', { response }),
    );
    this.ended = true;
    return { events: out, response };
  }

  /** After the first event: `response.failed` with the error and what was produced so far. */
  fail(
    error: { code: string; message: string },
    usage: ResponseUsage | null,
  ): { events: ResponseStreamEvent[]; response: Response } {
    const m = this.message;
    if (m?.part) {
      const p = m.part;
      m.item.content[p.index] =
        p.type === 'output_text'
          ? { type: 'output_text', text: p.text, annotations: [], logprobs: [] }
          : { type: 'refusal', refusal: p.text };
    }
    if (this.openTool?.item) this.openTool.item.arguments = this.openTool.args;
    for (const item of this.output) if (item.status === 'in_progress') item.status = 'incomplete';
    const response = this.snapshot({
      status: 'failed',
      output: this.output,
      usage,
      error: error as Response['error'],
    });
    this.ended = true;
    return { events: [this.event('response.failed', { response })], response };
  }

  /** Close the open message or call (the next text or call starts a new item). */
  endItem(
    out: ResponseStreamEvent[] = [],
    status: ResponseOutputMessage['status'] = 'completed',
  ): ResponseStreamEvent[] {
    this.closeMessage(out, status);
    this.closeTool(out, status);
    return out;
  }

  /** The terminal lifecycle event for a finished Response (its status decides which). */
  lifecycle(response: Response): ResponseStreamEvent {
    this.ended = true;
    if (response.status === 'failed') return this.event('response.failed', { response });
    if (response.status === 'incomplete') return this.event('response.incomplete', { response });
    return this.event('response.completed', { response });
  }

  get done(): boolean {
    return this.ended;
  }

  /** An `error` event (for a failure before `response.created` went out). */
  errorEvent(error: { code: string | null; message: string; param: string | null }): ResponseStreamEvent {
    return this.event('error', { code: error.code, message: error.message, param: error.param });
  }
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/**
 * The events of a stored response, as if it were streamed again (`GET /v1/responses/{id}` with
 * `stream=true`): same ids, same text, one delta per content part.
 */
export function replayEvents(stored: Response): ResponseStreamEvent[] {
  const ids = stored.output.map((i) => i.id ?? '');
  let next = 0;
  const s = new ResponseEventStream(
    (state) =>
      ({
        ...stored,
        status: state.status,
        output: structuredClone(state.output),
        usage: state.status === 'in_progress' ? null : stored.usage,
        ...(state.status === 'in_progress' ? { completed_at: null } : {}),
      }) as Response,
    () => ids[next++] ?? '',
  );
  const events = s.start();
  let toolIndex = 0;
  for (const item of stored.output) {
    if (item.type === 'message') {
      for (const p of item.content) {
        if (p.type === 'output_text') s.text('output_text', p.text, events);
        else if (p.type === 'refusal') s.text('refusal', p.refusal, events);
      }
      if (item.content.length === 0) s.text('output_text', '', events);
    } else if (item.type === 'function_call') {
      s.toolCall(toolIndex++, { id: item.call_id, name: item.name, args: item.arguments }, events);
    }
    s.endItem(
      events,
      item.type === 'message' || item.type === 'function_call' ? (item.status ?? 'completed') : 'completed',
    );
  }
  events.push(s.lifecycle(stored));
  return events;
}
