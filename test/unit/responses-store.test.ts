import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { TABLES } from '../../container/src/contract';
import { ensureTables, type LocalService, startDynalite } from '../../container/src/local/dynamo';
import { newResponseId } from '../../container/src/responses/ids';
import { RecordTooLargeError, ResponseStore, type StoredResponse } from '../../container/src/responses/store';
import type { Response } from '../../container/src/wire/responses';

let dynamo: LocalService;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
const table = 'test-responses';

beforeAll(async () => {
  dynamo = await startDynalite();
  client = new DynamoDBClient({
    endpoint: dynamo.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  doc = DynamoDBDocumentClient.from(client);
  await ensureTables(client, {
    apiKeys: 'test-api-keys',
    usage: 'test-usage',
    jobs: 'test-jobs',
    conversations: 'test-conversations',
    responses: table,
  });
});

afterAll(async () => {
  client.destroy();
  await dynamo.stop();
});

function record(text: string): StoredResponse {
  const id = newResponseId();
  const response = {
    id,
    object: 'response',
    status: 'completed',
    output: [{ id: 'msg_1', type: 'message', role: 'assistant', status: 'completed', content: [] }],
  } as unknown as Response;
  return {
    response,
    context: [
      {
        id: 'msg_0',
        type: 'message',
        role: 'user',
        status: 'completed',
        content: [{ type: 'input_text', text }],
      },
    ],
  };
}

async function rowsOf(id: string) {
  const r = await doc.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: '#pk = :id',
      ExpressionAttributeNames: { '#pk': TABLES.responses.partitionKey },
      ExpressionAttributeValues: { ':id': id },
    }),
  );
  return r.Items ?? [];
}

const storeWith = (opts: { retentionDays?: number; chunkBytes?: number; maxBytes?: number } = {}) =>
  new ResponseStore({ doc, table, retentionDays: 30, ...opts });

describe('ResponseStore', () => {
  it('keeps a response for its owner only, with a TTL 30 days out', async () => {
    const store = storeWith();
    const rec = record('hello');
    await store.put('alice', rec);
    expect(await store.get('alice', rec.response.id)).toEqual(rec);
    expect(await store.get('bob', rec.response.id)).toBeNull();
    const [row] = await rowsOf(rec.response.id);
    const days = ((row?.[TABLES.responses.ttlAttribute] as number) - Date.now() / 1000) / 86_400;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
  });

  it('splits a record larger than one item over several rows and reads it back whole', async () => {
    const small = storeWith({ chunkBytes: 4096 });
    // Random text barely compresses: about 60 KB of gzip, 15 rows of 4 KB.
    const rec = record(randomBytes(45_000).toString('base64'));
    await small.put('alice', rec);
    const rows = await rowsOf(rec.response.id);
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.every((r) => r.owner === 'alice' && r.chunks === rows.length)).toBe(true);
    expect(await small.get('alice', rec.response.id)).toEqual(rec);
  });

  it('does not serve a record with a missing row', async () => {
    const small = storeWith({ chunkBytes: 4096 });
    const rec = record(randomBytes(20_000).toString('base64'));
    await small.put('alice', rec);
    await doc.send(
      new DeleteCommand({
        TableName: table,
        Key: { [TABLES.responses.partitionKey]: rec.response.id, [TABLES.responses.sortKey]: '0001' },
      }),
    );
    expect(await small.get('alice', rec.response.id)).toBeNull();
  });

  it('treats a record past its expiry as gone before TTL sweeps it', async () => {
    const shortLived = storeWith({ retentionDays: 1 / 86_400 });
    const rec = record('soon gone');
    await shortLived.put('alice', rec);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await rowsOf(rec.response.id)).toHaveLength(1);
    expect(await shortLived.get('alice', rec.response.id)).toBeNull();
  });

  it("deletes every row of its owner's record, and nothing of anyone else's", async () => {
    const small = storeWith({ chunkBytes: 4096 });
    const rec = record(randomBytes(20_000).toString('base64'));
    await small.put('alice', rec);
    expect(await small.delete('bob', rec.response.id)).toBe(false);
    expect((await rowsOf(rec.response.id)).length).toBeGreaterThan(1);
    expect(await small.delete('alice', rec.response.id)).toBe(true);
    expect(await rowsOf(rec.response.id)).toHaveLength(0);
    expect(await small.delete('alice', rec.response.id)).toBe(false);
  });

  it('refuses a record over its size bound', async () => {
    const tiny = storeWith({ maxBytes: 1000 });
    await expect(tiny.put('alice', record(randomBytes(5000).toString('base64')))).rejects.toBeInstanceOf(
      RecordTooLargeError,
    );
  });

  it('keeps a record without expiry when retention is 0', async () => {
    const forever = storeWith({ retentionDays: 0 });
    const rec = record('kept');
    await forever.put('alice', rec);
    const [row] = await rowsOf(rec.response.id);
    expect(row).not.toHaveProperty(TABLES.responses.ttlAttribute);
    expect(await forever.get('alice', rec.response.id)).toEqual(rec);
  });
});
