/**
 * In-process DynamoDB (dynalite) and the table set-up shared by dev mode, tests and
 * LocalStack runs. The tables mirror what the CDK app deploys, from `TABLES` in the contract.
 */
import type { Server } from 'node:http';
import {
  type AttributeDefinition,
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { TABLES } from '../contract';
import { closeHttpServer, type LocalService, listeningPort, sleep } from './ports';

export type { LocalService } from './ports';

/** The part of dynalite's (untyped) factory this module uses. */
type DynaliteFactory = (options: {
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}) => Server;

/**
 * Starts dynalite in this process, in memory, on a free 127.0.0.1 port, with table
 * creation, deletion and update taking no time. `url` is the endpoint for the SDK.
 */
export async function startDynalite(): Promise<LocalService> {
  // Loaded lazily: dynalite is a devDependency and this module sits in the runtime tree,
  // so nothing may require it at import time. It ships no types.
  const dynalite = require('dynalite') as DynaliteFactory;
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = listeningPort(server);
  let stopping: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => {
      stopping ??= closeHttpServer(server);
      return stopping;
    },
  };
}

/** Physical table names, keyed like `TABLES`. */
export interface TableNames {
  apiKeys: string;
  usage: string;
  jobs: string;
  conversations: string;
}

const TABLE_READY_TIMEOUT_MS = 60_000;

/**
 * Creates the four Tollgate tables (on-demand billing, the contract's key schemas, the
 * api-keys GSIs, TTL where the endpoint supports it) and waits until they are ACTIVE.
 * Idempotent: tables that already exist are left as they are (their schema is not checked).
 */
export async function ensureTables(client: DynamoDBClient, names: TableNames): Promise<void> {
  const inputs: Array<{ input: CreateTableCommandInput; ttlAttribute?: string }> = [
    { input: apiKeysTable(names.apiKeys) },
    {
      input: keyedTable(names.usage, TABLES.usage.partitionKey, TABLES.usage.sortKey),
      ttlAttribute: TABLES.usage.ttlAttribute,
    },
    { input: jobsTable(names.jobs), ttlAttribute: TABLES.jobs.ttlAttribute },
    {
      input: keyedTable(names.conversations, TABLES.conversations.partitionKey),
      ttlAttribute: TABLES.conversations.ttlAttribute,
    },
  ];
  await Promise.all(
    inputs.map(async ({ input, ttlAttribute }) => {
      const tableName = input.TableName!;
      try {
        await client.send(new CreateTableCommand(input));
      } catch (err) {
        if (errorName(err) !== 'ResourceInUseException') throw err;
      }
      await waitUntilActive(client, tableName);
      if (ttlAttribute) await enableTtl(client, tableName, ttlAttribute);
    }),
  );
}

function apiKeysTable(tableName: string): CreateTableCommandInput {
  const t = TABLES.apiKeys;
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: stringAttributes(
      t.partitionKey,
      t.byIdIndex.partitionKey,
      t.byOwnerIndex.partitionKey,
      t.byOwnerIndex.sortKey,
    ),
    KeySchema: [{ AttributeName: t.partitionKey, KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [
      {
        IndexName: t.byIdIndex.name,
        KeySchema: [{ AttributeName: t.byIdIndex.partitionKey, KeyType: 'HASH' }],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: t.byOwnerIndex.name,
        KeySchema: [
          { AttributeName: t.byOwnerIndex.partitionKey, KeyType: 'HASH' },
          { AttributeName: t.byOwnerIndex.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}

function jobsTable(tableName: string): CreateTableCommandInput {
  const t = TABLES.jobs;
  const base = keyedTable(tableName, t.partitionKey);
  return {
    ...base,
    AttributeDefinitions: stringAttributes(
      t.partitionKey,
      t.pendingIndex.partitionKey,
      t.pendingIndex.sortKey,
      t.failedIndex.partitionKey,
      t.failedIndex.sortKey,
    ),
    GlobalSecondaryIndexes: [
      {
        IndexName: t.pendingIndex.name,
        KeySchema: [
          { AttributeName: t.pendingIndex.partitionKey, KeyType: 'HASH' },
          { AttributeName: t.pendingIndex.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
      {
        IndexName: t.failedIndex.name,
        KeySchema: [
          { AttributeName: t.failedIndex.partitionKey, KeyType: 'HASH' },
          { AttributeName: t.failedIndex.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...t.failedIndex.projected] },
      },
    ],
  };
}

function keyedTable(tableName: string, partitionKey: string, sortKey?: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: sortKey ? stringAttributes(partitionKey, sortKey) : stringAttributes(partitionKey),
    KeySchema: sortKey
      ? [
          { AttributeName: partitionKey, KeyType: 'HASH' },
          { AttributeName: sortKey, KeyType: 'RANGE' },
        ]
      : [{ AttributeName: partitionKey, KeyType: 'HASH' }],
  };
}

function stringAttributes(...names: string[]): AttributeDefinition[] {
  return names.map((AttributeName) => ({ AttributeName, AttributeType: 'S' }));
}

async function waitUntilActive(client: DynamoDBClient, tableName: string): Promise<void> {
  // Hand-rolled rather than the SDK waiter, whose minimum delay (20 s) dwarfs dynalite's 0 ms.
  const deadline = Date.now() + TABLE_READY_TIMEOUT_MS;
  let delay = 25;
  for (;;) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    const indexesActive = (Table?.GlobalSecondaryIndexes ?? []).every((i) => i.IndexStatus === 'ACTIVE');
    if (Table?.TableStatus === 'ACTIVE' && indexesActive) return;
    if (Date.now() > deadline) {
      throw new Error(
        `table ${tableName} not ACTIVE after ${TABLE_READY_TIMEOUT_MS} ms (status ${Table?.TableStatus})`,
      );
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 1000);
  }
}

async function enableTtl(client: DynamoDBClient, tableName: string, attribute: string): Promise<void> {
  try {
    const { TimeToLiveDescription: d } = await client.send(
      new DescribeTimeToLiveCommand({ TableName: tableName }),
    );
    // Real DynamoDB refuses to re-enable TTL that is already on, so look before asking.
    if (
      (d?.TimeToLiveStatus === 'ENABLED' || d?.TimeToLiveStatus === 'ENABLING') &&
      d.AttributeName === attribute
    ) {
      return;
    }
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: attribute, Enabled: true },
      }),
    );
  } catch (err) {
    // dynalite implements neither UpdateTimeToLive nor expiry; items simply never expire there.
    if (errorName(err) === 'UnknownOperationException') return;
    if (errorName(err) === 'ValidationException' && /already enabled/i.test(errorMessage(err))) return;
    throw err;
  }
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : '';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
