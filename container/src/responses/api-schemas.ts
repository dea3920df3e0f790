/**
 * Response shapes of the Responses API for the OpenAPI document (requests are documented with
 * the schemas that validate them, in schema.ts). Loose: they describe what the routes build.
 */
import { z } from 'zod';

const outputText = z.object({
  type: z.literal('output_text'),
  text: z.string(),
  annotations: z.array(z.unknown()).meta({ description: 'Always empty on a chat path' }),
  logprobs: z.array(z.unknown()).optional(),
});
const refusal = z.object({ type: z.literal('refusal'), refusal: z.string() });
const itemStatus = z.enum(['in_progress', 'completed', 'incomplete']);

const outputMessage = z.object({
  id: z.string().meta({ description: 'msg_...' }),
  type: z.literal('message'),
  role: z.literal('assistant'),
  status: itemStatus,
  content: z.array(z.union([outputText, refusal])),
});
const functionCall = z.object({
  id: z.string().meta({ description: 'fc_...' }),
  type: z.literal('function_call'),
  status: itemStatus,
  call_id: z.string().meta({ description: "The upstream's tool-call id" }),
  name: z.string(),
  arguments: z.string().meta({ description: 'JSON text' }),
});
const inputMessage = z.object({
  id: z.string(),
  type: z.literal('message'),
  role: z.enum(['user', 'system', 'developer']),
  status: itemStatus,
  content: z.array(
    z.union([
      z.object({ type: z.literal('input_text'), text: z.string() }),
      z.object({
        type: z.literal('input_image'),
        image_url: z.string(),
        detail: z.string(),
        file_id: z.null(),
      }),
    ]),
  ),
});
const functionCallOutput = z.object({
  id: z.string().meta({ description: 'fco_...' }),
  type: z.literal('function_call_output'),
  status: itemStatus,
  call_id: z.string(),
  output: z.string(),
});

const usage = z.object({
  input_tokens: z.number().int(),
  input_tokens_details: z.object({
    cached_tokens: z.number().int(),
    cache_write_tokens: z.number().int(),
  }),
  output_tokens: z.number().int(),
  output_tokens_details: z.object({ reasoning_tokens: z.number().int() }),
  total_tokens: z.number().int(),
});

export const responseObjectSchema = z.looseObject({
  id: z.string().meta({ description: 'resp_...' }),
  object: z.literal('response'),
  created_at: z.number().int(),
  status: z.enum(['in_progress', 'completed', 'incomplete', 'failed']),
  completed_at: z.number().int().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  incomplete_details: z.object({ reason: z.enum(['max_output_tokens', 'content_filter']) }).nullable(),
  instructions: z.string().nullable(),
  model: z.string().meta({ description: 'The public model id' }),
  output: z.array(z.union([outputMessage, functionCall])),
  previous_response_id: z.string().nullable(),
  store: z.boolean(),
  usage: usage.nullable(),
  metadata: z.record(z.string(), z.string()),
});

export const deletedResponseSchema = z.object({
  id: z.string(),
  object: z.literal('response'),
  deleted: z.literal(true),
});

export const inputItemListSchema = z.object({
  object: z.literal('list'),
  data: z.array(z.union([inputMessage, outputMessage, functionCall, functionCallOutput])),
  first_id: z.string().nullable(),
  last_id: z.string().nullable(),
  has_more: z.boolean(),
});

export const RESPONSES_STREAM_DESCRIPTION =
  'With `stream: true`: named SSE events (`event: <type>` + `data: {...}`), each with a ' +
  '`sequence_number` from 0: `response.created`, `response.in_progress`, then per message ' +
  '`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`..., ' +
  '`response.output_text.done`, `response.content_part.done`, `response.output_item.done`, per ' +
  'function call `response.output_item.added`, `response.function_call_arguments.delta`..., ' +
  '`response.function_call_arguments.done`, `response.output_item.done`, and last ' +
  '`response.completed` (with usage), or `response.incomplete` when the output was cut. A failure ' +
  'after `response.created` is `response.failed`; after `: ping` comments only, an `error` event. ' +
  'No `[DONE]`.';
