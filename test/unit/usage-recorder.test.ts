/**
 * UsageRecorder against a fake DynamoDB client: what it writes, and what it does when the table
 * refuses a row for good (a ValidationException fails the whole BatchWriteItem).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Telemetry } from '../../container/src/telemetry/telemetry';
import { type UsageRecord, UsageRecorder } from '../../container/src/usage/usage-recorder';

interface Sent {
  name: string;
  input: Record<string, unknown>;
}

function fakeDdb(refuse: (requestId: string) => boolean) {
  const sent: Sent[] = [];
  const rows: string[] = [];
  const ddb = {
    send: async (cmd: { constructor: { name: string }; input: Record<string, unknown> }) => {
      sent.push({ name: cmd.constructor.name, input: cmd.input });
      if (cmd.constructor.name === 'BatchWriteItemCommand') {
        const items = Object.values(cmd.input['RequestItems'] as Record<string, unknown[]>)[0] as Array<{
          PutRequest: { Item: Record<string, { S?: string; N?: string }> };
        }>;
        const ids = items.map((i) => i.PutRequest.Item['requestId']?.S ?? '');
        if (ids.some(refuse)) {
          const err = new Error('One or more parameter values were invalid');
          err.name = 'ValidationException';
          throw err;
        }
        rows.push(...ids);
        return { UnprocessedItems: {} };
      }
      return {};
    },
  } as unknown as DynamoDBClient;
  return { ddb, sent, rows };
}

function record(requestId: string, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    requestId,
    keyId: 'key_1',
    owner: 'o1',
    model: 'm',
    promptTokens: 10,
    completionTokens: 5,
    cachedTokens: 0,
    costUsd: 0.0001,
    latencyMs: 3,
    ttftMs: null,
    status: 200,
    cached: false,
    estimated: false,
    stream: false,
    source: 'sync',
    ts: Date.UTC(2026, 10, 28, 12),
    ...over,
  };
}

const telemetry = new Telemetry({ serviceName: 'test', namespace: 'Test' });
afterAll(() => telemetry.close());

describe('UsageRecorder', () => {
  it('writes built items and one daily total per owner, day and model', async () => {
    const { ddb, sent, rows } = fakeDdb(() => false);
    const rec = new UsageRecorder({ ddb, table: 't', telemetry, flushIntervalMs: 600_000 });
    for (let i = 0; i < 3; i++) rec.record(record(`r${i}`));
    expect(rec.pending).toBe(3);
    await rec.close(2000);
    expect(rows).toEqual(['r0', 'r1', 'r2']);
    const puts = sent.filter((s) => s.name === 'BatchWriteItemCommand');
    const item = (
      Object.values(puts[0]?.input['RequestItems'] as Record<string, unknown[]>)[0] as unknown[]
    )[0];
    expect(item).toMatchObject({
      PutRequest: {
        Item: {
          pk: { S: 'OWNER#o1' },
          promptTokens: { N: '10' },
          ttftMs: { NULL: true },
          cached: { BOOL: false },
        },
      },
    });
    const sk = (s: Sent) => (s.input['Key'] as { sk: { S: string } }).sk.S;
    const updates = sent.filter((s) => s.name === 'UpdateItemCommand');
    const totals = updates.filter((s) => sk(s).startsWith('DAY#'));
    expect(totals).toHaveLength(1);
    // Beside it, one hourly total per owner, hour, key and model.
    expect(updates.filter((s) => sk(s).startsWith('HOUR#')).map(sk)).toEqual(['HOUR#2026-11-28T12#key_1#m']);
    expect(totals[0]?.input['ExpressionAttributeValues']).toMatchObject({
      ':r': { N: '3' },
      ':p': { N: '30' },
    });
    expect(rec.pending).toBe(0);
  });

  it('drops only the row the table refuses for good, and keeps writing after it', async () => {
    const { ddb, rows } = fakeDdb((id) => id === 'bad');
    const rec = new UsageRecorder({ ddb, table: 't', telemetry, flushIntervalMs: 600_000 });
    for (const id of ['a', 'bad', 'b']) rec.record(record(id));
    await rec.flush();
    expect(rows.sort()).toEqual(['a', 'b']);
    rec.record(record('c'));
    await rec.close(2000);
    expect(rows.sort()).toEqual(['a', 'b', 'c']);
    expect(rec.pending).toBe(0);
  });

  it('never sends a number DynamoDB would refuse', async () => {
    const { ddb, sent } = fakeDdb(() => false);
    const rec = new UsageRecorder({ ddb, table: 't', telemetry, flushIntervalMs: 600_000 });
    rec.record(record('nan', { costUsd: Number.NaN, latencyMs: Number.POSITIVE_INFINITY }));
    await rec.close(2000);
    const numbers = JSON.stringify(sent.map((s) => s.input)).match(/"N":"[^"]*"/g) ?? [];
    expect(numbers.length).toBeGreaterThan(5);
    for (const n of numbers) expect(n).toMatch(/^"N":"-?\d+(\.\d+)?(e-?\d+)?"$/);
  });
});
