import { createHash } from 'node:crypto';
import { DeleteCommand, type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/errors';
import { ConflictError } from '../errors';

/** One stored turn half. The system prompt is never stored: it comes from the config each time. */
export interface StoredMessage {
  role: 'user' | 'assistant';
  content: string;
  /** ISO 8601, when the service received the message (user) or finished the reply (assistant). */
  timestamp: string;
  /**
   * Prompt tokens of this message (`countMessageTokens`), counted once at write time so that
   * choosing the history for a prompt does not re-tokenize the whole conversation every turn.
   */
  tokens?: number;
}

/** A conversation row of the conversations table. */
export interface Conversation {
  conversationId: string;
  owner: string;
  userId: string;
  /** Bumped by every write; writes are conditional on the version they read. */
  version: number;
  messages: StoredMessage[];
  createdAt: string;
  updatedAt: string;
  /** Epoch seconds (the table's TTL attribute); absent = kept until deleted. */
  expiresAt?: number;
}

/** Where the conversations live and how much of each is kept. */
export interface ConversationStoreOptions {
  doc: DynamoDBDocumentClient;
  table: string;
  /** Messages kept per conversation; older ones are dropped on write. */
  historyLimit: number;
  /**
   * Upper bound on the serialized messages of one row. DynamoDB refuses items over 400 KB;
   * the margin covers the other attributes and the difference between JSON and DynamoDB sizing.
   * @default 350_000
   */
  maxItemBytes?: number;
  /** Days a conversation lives after its last write (DynamoDB TTL); 0 or absent = forever. */
  retentionDays?: number | undefined;
  /**
   * Conditional-write attempts per append before giving up with 409. Each round at least one
   * of the competing writers wins, so this bounds how many concurrent turns always land.
   * @default 10
   */
  maxAttempts?: number;
}

/** Every attempt to append lost the race against other writes to the same conversation. */
export class ConversationConflictError extends ConflictError {
  constructor() {
    super('The conversation is being updated by too many concurrent messages; try again.', {
      code: 'conversation_conflict',
      headers: { 'retry-after': '1' },
    });
    this.name = 'ConversationConflictError';
  }
}

/**
 * The partition key for one end user of one API-key owner. A hash rather than a concatenation:
 * fixed length and collision-free whatever characters the owner name holds, and the same
 * `user_id` under two owners lands on two different rows. Owner and user id are kept on the
 * row and checked on every read.
 */
export function conversationIdFor(owner: string, userId: string): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([owner, userId]))
    .digest('hex');
  return `conv_${digest.slice(0, 32)}`;
}

/**
 * Keep the newest `limit` messages, then drop the oldest until the row fits `maxBytes`, by whole
 * turns: a reply whose question had to go goes too. The newest `keepAtLeast` messages (the turn
 * being written) always stay.
 */
export function boundHistory(
  messages: readonly StoredMessage[],
  limit: number,
  maxBytes: number,
  keepAtLeast = 0,
): StoredMessage[] {
  const kept = messages.slice(-limit);
  const sizes = kept.map((m) => Buffer.byteLength(JSON.stringify(m)));
  let total = sizes.reduce((a, b) => a + b, 0);
  let start = 0;
  while (total > maxBytes && kept.length - start > keepAtLeast) {
    total -= sizes[start] as number;
    start++;
  }
  if (start > 0) {
    while (kept[start]?.role === 'assistant' && kept.length - start > keepAtLeast) start++;
  }
  return kept.slice(start);
}

const BACKOFF_BASE_MS = 10;
const BACKOFF_CAP_MS = 250;

/**
 * Conversation history in DynamoDB, one row per (owner, user id). Appends are optimistic:
 * read the row, write it back conditional on the version read, and on a lost race read again
 * and re-append, so concurrent turns all land and none overwrites another.
 */
export class ConversationStore {
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly historyLimit: number;
  private readonly maxItemBytes: number;
  private readonly retentionDays: number;
  private readonly maxAttempts: number;

  constructor({
    doc,
    table,
    historyLimit,
    maxItemBytes = 350_000,
    retentionDays = 0,
    maxAttempts = 10,
  }: ConversationStoreOptions) {
    this.doc = doc;
    this.table = table;
    this.historyLimit = historyLimit;
    this.maxItemBytes = maxItemBytes;
    this.retentionDays = retentionDays;
    this.maxAttempts = maxAttempts;
  }

  /** The caller's conversation, or null when there is none (or it belongs to someone else). */
  async get(owner: string, userId: string): Promise<Conversation | null> {
    const row = await this.read(conversationIdFor(owner, userId));
    return row && this.isLive(row, owner, userId) ? row : null;
  }

  /**
   * Append messages (one user message and its reply) and trim to the history limit.
   * @throws ConversationConflictError when every attempt lost the race.
   */
  async append(owner: string, userId: string, added: readonly StoredMessage[]): Promise<Conversation> {
    const conversationId = conversationIdFor(owner, userId);
    for (let attempt = 1; ; attempt++) {
      const row = await this.read(conversationId);
      if (row && (row.owner !== owner || row.userId !== userId)) {
        // Only a SHA-256 collision gets here; refuse rather than mix two people's histories.
        throw new Error(`conversation ${conversationId} belongs to another owner or user`);
      }
      const live = row !== null && this.isLive(row, owner, userId);
      const now = new Date();
      const next: Conversation = {
        conversationId,
        owner,
        userId,
        version: (row?.version ?? 0) + 1,
        messages: boundHistory(
          [...(live ? row.messages : []), ...added],
          this.historyLimit,
          this.maxItemBytes,
          added.length,
        ),
        createdAt: live ? row.createdAt : now.toISOString(),
        updatedAt: now.toISOString(),
        ...(this.retentionDays > 0
          ? { expiresAt: Math.floor(now.getTime() / 1000 + this.retentionDays * 86_400) }
          : {}),
      };
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: next,
            ...(row
              ? {
                  ConditionExpression: '#version = :version',
                  ExpressionAttributeNames: { '#version': 'version' },
                  ExpressionAttributeValues: { ':version': row.version },
                }
              : { ConditionExpression: 'attribute_not_exists(conversationId)' }),
          }),
        );
        return next;
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
        if (attempt >= this.maxAttempts) throw new ConversationConflictError();
        // Full jitter: competing writers spread out instead of colliding again in lockstep.
        await sleep(Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt));
      }
    }
  }

  /** Erase the conversation. False when there was none for this owner and user id. */
  async delete(owner: string, userId: string): Promise<boolean> {
    try {
      const r = await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { conversationId: conversationIdFor(owner, userId) },
          ConditionExpression: '#owner = :owner AND userId = :userId',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': owner, ':userId': userId },
          ReturnValues: 'ALL_OLD',
        }),
      );
      const old = r.Attributes ? toConversation(r.Attributes) : null;
      // An expired row that TTL had not removed yet was already gone as far as callers could see.
      return old !== null && this.isLive(old, owner, userId);
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  private async read(conversationId: string): Promise<Conversation | null> {
    // Strongly consistent: the next turn must see the reply the previous request just stored,
    // and a conditional write must start from the latest version.
    const r = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { conversationId }, ConsistentRead: true }),
    );
    return r.Item ? toConversation(r.Item) : null;
  }

  private isLive(row: Conversation, owner: string, userId: string): boolean {
    if (row.owner !== owner || row.userId !== userId) return false;
    // DynamoDB deletes expired items up to days late; they must not come back meanwhile.
    return row.expiresAt === undefined || row.expiresAt > Date.now() / 1000;
  }
}

function toConversation(item: Record<string, unknown>): Conversation {
  const messages = Array.isArray(item['messages']) ? (item['messages'] as StoredMessage[]) : [];
  const expiresAt = item['expiresAt'];
  return {
    conversationId: String(item['conversationId']),
    owner: String(item['owner']),
    userId: String(item['userId']),
    version: typeof item['version'] === 'number' ? item['version'] : 0,
    messages,
    createdAt: String(item['createdAt'] ?? ''),
    updatedAt: String(item['updatedAt'] ?? ''),
    ...(typeof expiresAt === 'number' ? { expiresAt } : {}),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
