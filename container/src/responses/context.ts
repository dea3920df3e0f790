import { BadRequestError, NotFoundError } from '../errors';
import type { ContextItem, OutputItem } from '../wire/responses';
import { type ItemIds, responseIdOfItem } from './ids';
import type { DraftItem, ResponsesRequest } from './schema';

/** What the context builder needs from a stored response. */
export interface StoredTurn {
  /** Everything the model saw for that response, in order (instructions excluded). */
  context: ContextItem[];
  /** What it answered. */
  output: OutputItem[];
}

/** Reads one of the caller's stored responses (null: none, someone else's, or expired). */
export type TurnLoader = (responseId: string) => Promise<StoredTurn | null>;

/** OpenAI's 404 for a `previous_response_id` that cannot be used. */
export function previousNotFound(id: string): NotFoundError {
  return new NotFoundError(`Previous response with id '${id}' not found.`, {
    param: 'previous_response_id',
    code: 'previous_response_not_found',
  });
}

function itemNotFound(id: string, param: string): NotFoundError {
  return new NotFoundError(`Item with id '${id}' not found.`, { param, code: 'item_not_found' });
}

/** A validated input item with its id, as it is stored and listed. */
function toContextItem(d: Exclude<DraftItem, { type: 'item_reference' }>, ids: ItemIds): ContextItem {
  switch (d.type) {
    case 'message':
      if (d.role === 'assistant')
        return {
          id: d.id ?? ids.take('msg'),
          type: 'message',
          role: 'assistant',
          status: d.status,
          content: d.content.map((p) =>
            p.type === 'output_text'
              ? { type: 'output_text', text: p.text, annotations: p.annotations as [] }
              : { type: 'refusal', refusal: p.refusal },
          ),
        };
      return {
        id: d.id ?? ids.take('msg'),
        type: 'message',
        role: d.role,
        status: 'completed',
        content: d.content.map((p) =>
          p.type === 'input_text'
            ? { type: 'input_text', text: p.text }
            : { type: 'input_image', image_url: p.image_url, detail: p.detail, file_id: null },
        ),
      };
    case 'function_call':
      return {
        id: d.id ?? ids.take('fc'),
        type: 'function_call',
        call_id: d.call_id,
        name: d.name,
        arguments: d.arguments,
        status: 'completed',
      };
    case 'function_call_output':
      return {
        id: d.id ?? ids.take('fco'),
        type: 'function_call_output',
        call_id: d.call_id,
        output: d.output,
        status: 'completed',
      };
  }
}

/**
 * The whole conversation the model is asked to continue: the previous response's context and
 * output (with `previous_response_id`), then this request's input, with item references
 * replaced by the caller's stored items and every item given an id.
 */
export async function buildContext(
  req: Pick<ResponsesRequest, 'input' | 'previousResponseId'>,
  ids: ItemIds,
  load: TurnLoader,
): Promise<ContextItem[]> {
  const turns = new Map<string, Promise<StoredTurn | null>>();
  const loadOnce = (id: string) => {
    let t = turns.get(id);
    if (!t) {
      t = load(id);
      turns.set(id, t);
    }
    return t;
  };
  // Every lookup starts at once: a multi-step tool loop references one item per earlier step.
  for (const { item } of req.input) {
    if (item.type !== 'item_reference') continue;
    const rid = responseIdOfItem(item.id);
    if (rid) void loadOnce(rid).catch(() => null);
  }
  const context: ContextItem[] = [];
  const seen = new Set<string>();
  const calls = new Set<string>();
  const add = (item: ContextItem, param: string | null) => {
    // The same item twice (a client that chains and also resends an earlier output) is kept once.
    if (seen.has(item.id)) return;
    if (item.type === 'function_call') calls.add(item.call_id);
    // A tool result must answer a call made earlier in the conversation (OpenAI refuses it too).
    if (param !== null && item.type === 'function_call_output' && !calls.has(item.call_id ?? ''))
      throw new BadRequestError(
        `No tool call found for function call output with call_id '${item.call_id}'.`,
        { param: `${param}.call_id`, code: 'invalid_value' },
      );
    seen.add(item.id);
    context.push(item);
  };
  if (req.previousResponseId) {
    const prev = await loadOnce(req.previousResponseId);
    if (!prev) throw previousNotFound(req.previousResponseId);
    for (const item of prev.context) add(item, null);
    for (const item of prev.output) add(item, null);
  }
  for (const { item, param } of req.input) {
    if (item.type !== 'item_reference') {
      add(toContextItem(item, ids), param);
      continue;
    }
    const rid = responseIdOfItem(item.id);
    const turn = rid ? await loadOnce(rid) : null;
    const found = turn && [...turn.output, ...turn.context].find((i) => i.id === item.id);
    if (!found) throw itemNotFound(item.id, `${param}.id`);
    add(found, param);
  }
  return context;
}
