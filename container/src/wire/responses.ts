/**
 * The OpenAI Responses API wire types Tollgate produces: the openai SDK's own definitions, so
 * the objects and events it sends are checked against what clients parse.
 */
import type {
  Response,
  ResponseFunctionToolCallItem,
  ResponseFunctionToolCallOutputItem,
  ResponseInputMessageItem,
  ResponseItem,
  ResponseOutputItem,
  ResponseOutputMessage,
  ResponseOutputRefusal,
  ResponseOutputText,
  ResponseStreamEvent,
  ResponseUsage,
} from 'openai/resources/responses/responses';

export type {
  Response,
  ResponseFunctionToolCallItem,
  ResponseFunctionToolCallOutputItem,
  ResponseInputMessageItem,
  ResponseItem,
  ResponseOutputItem,
  ResponseOutputMessage,
  ResponseOutputRefusal,
  ResponseOutputText,
  ResponseStreamEvent,
  ResponseUsage,
};

/** The output items Tollgate produces: assistant messages and function calls. */
export type OutputItem = ResponseOutputMessage | ResponseFunctionToolCallItem;

/**
 * An item of a stored conversation: what the model saw (input messages, earlier assistant
 * messages and function calls, function call outputs), each with its id, as
 * `GET /v1/responses/{id}/input_items` lists them.
 */
export type ContextItem =
  | ResponseInputMessageItem
  | ResponseOutputMessage
  | ResponseFunctionToolCallItem
  | ResponseFunctionToolCallOutputItem;
