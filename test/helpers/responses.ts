/**
 * Helpers for the Responses API suites: raw SSE parsing and the route plugin under test.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { TABLES } from '../../container/src/contract';
import type { TestService } from './service';

export { registerResponsesRoutes } from '../../container/src/http/responses-routes';

/** One SSE frame: its `event:` name and parsed `data:`, or a comment. */
export interface SseFrame {
  event: string | undefined;
  // biome-ignore lint/suspicious/noExplicitAny: tests assert on arbitrary event payloads
  data: any;
}

/** Parse a whole SSE body into frames (comments such as `: ping` are returned as event ':'). */
export function parseSse(text: string): SseFrame[] {
  const frames: SseFrame[] = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) frames.push({ event: ':', data: line.slice(1).trim() });
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length) frames.push({ event, data: JSON.parse(data.join('\n')) });
  }
  return frames;
}

/** Age every row of a stored response past its TTL (what DynamoDB's lazy sweeper leaves). */
export async function expireStoredResponse(svc: TestService, responseId: string): Promise<void> {
  const rt = svc.server.runtime;
  await rt.doc.send(
    new UpdateCommand({
      TableName: rt.env.tables.responses,
      Key: { [TABLES.responses.partitionKey]: responseId, [TABLES.responses.sortKey]: '0000' },
      UpdateExpression: 'SET #e = :past',
      ExpressionAttributeNames: { '#e': TABLES.responses.ttlAttribute },
      ExpressionAttributeValues: { ':past': Math.floor(Date.now() / 1000) - 60 },
    }),
  );
}
