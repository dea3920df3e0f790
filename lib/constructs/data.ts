import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { TABLES } from '../../container/src/contract';

/** Props for {@link Data}. */
export interface DataProps {
  /**
   * What happens to the tables when the stack is deleted (or a table is replaced).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * DynamoDB deletion protection on every table.
   * @default false
   */
  readonly deletionProtection?: boolean;
}

/** The logical tables, keyed as in the runtime contract. */
export type LogicalTable = keyof typeof TABLES;

/** Item reads (no streams: nothing here reads them). */
const READ_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
] as const;
/** Item writes. */
const WRITE_ACTIONS = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
] as const;

/** What a consumer may do with a table: a preset, or an explicit list of DynamoDB actions. */
export type TableAccess = 'read' | 'readWrite' | readonly `dynamodb:${string}`[];

/**
 * The DynamoDB tables: api keys, usage, jobs, conversations. On-demand, point-in-time
 * recovery, encrypted with the AWS managed key, TTL where rows expire. Key schemas come
 * from the runtime contract. Physical names are left to CloudFormation (so a replacement
 * never collides) and reach the runtime through environment variables.
 */
export class Data extends Construct {
  readonly apiKeys: dynamodb.Table;
  readonly usage: dynamodb.Table;
  readonly jobs: dynamodb.Table;
  readonly conversations: dynamodb.Table;
  /** All tables by logical name. */
  readonly tables: Readonly<Record<LogicalTable, dynamodb.Table>>;

  constructor(scope: Construct, id: string, props: DataProps = {}) {
    super(scope, id);
    const common: Omit<dynamodb.TableProps, 'partitionKey'> = {
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: props.deletionProtection ?? false,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    };
    const str = (name: string): dynamodb.Attribute => ({ name, type: dynamodb.AttributeType.STRING });

    const k = TABLES.apiKeys;
    this.apiKeys = new dynamodb.Table(this, 'ApiKeys', { ...common, partitionKey: str(k.partitionKey) });
    this.apiKeys.addGlobalSecondaryIndex({
      indexName: k.byIdIndex.name,
      partitionKey: str(k.byIdIndex.partitionKey),
    });
    this.apiKeys.addGlobalSecondaryIndex({
      indexName: k.byOwnerIndex.name,
      partitionKey: str(k.byOwnerIndex.partitionKey),
      sortKey: str(k.byOwnerIndex.sortKey),
    });

    const u = TABLES.usage;
    this.usage = new dynamodb.Table(this, 'Usage', {
      ...common,
      partitionKey: str(u.partitionKey),
      sortKey: str(u.sortKey),
      timeToLiveAttribute: u.ttlAttribute,
    });

    const j = TABLES.jobs;
    this.jobs = new dynamodb.Table(this, 'Jobs', {
      ...common,
      partitionKey: str(j.partitionKey),
      timeToLiveAttribute: j.ttlAttribute,
    });
    // Unfinished jobs by age: GET /admin/queue reads the oldest from it.
    this.jobs.addGlobalSecondaryIndex({
      indexName: j.pendingIndex.name,
      partitionKey: str(j.pendingIndex.partitionKey),
      sortKey: str(j.pendingIndex.sortKey),
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });
    // Failed jobs by time: GET /admin/jobs/failed (the console's queue page) reads the latest.
    this.jobs.addGlobalSecondaryIndex({
      indexName: j.failedIndex.name,
      partitionKey: str(j.failedIndex.partitionKey),
      sortKey: str(j.failedIndex.sortKey),
      projectionType: dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: [...j.failedIndex.projected],
    });

    const c = TABLES.conversations;
    this.conversations = new dynamodb.Table(this, 'Conversations', {
      ...common,
      partitionKey: str(c.partitionKey),
      timeToLiveAttribute: c.ttlAttribute,
    });

    this.tables = {
      apiKeys: this.apiKeys,
      usage: this.usage,
      jobs: this.jobs,
      conversations: this.conversations,
    };
  }

  /**
   * Grant `access` on one table and its indexes, naming each index ARN (CDK's own grants
   * use `<table>/index/*`).
   */
  grant(grantee: iam.IGrantable, table: LogicalTable, access: TableAccess): iam.Grant {
    const actions =
      access === 'read'
        ? [...READ_ACTIONS]
        : access === 'readWrite'
          ? [...READ_ACTIONS, ...WRITE_ACTIONS]
          : [...access];
    const t = this.tables[table];
    // Only Query and Scan read an index: item actions get the table alone.
    const readsIndexes = actions.some((a) => a === 'dynamodb:Query' || a === 'dynamodb:Scan');
    const indexes = readsIndexes ? indexNames(table).map((name) => `${t.tableArn}/index/${name}`) : [];
    return iam.Grant.addToPrincipal({ grantee, actions, resourceArns: [t.tableArn, ...indexes] });
  }
}

function indexNames(table: LogicalTable): string[] {
  const spec: Record<string, unknown> = TABLES[table];
  return Object.values(spec).flatMap((v) =>
    typeof v === 'object' && v !== null && 'name' in v && typeof v.name === 'string' ? [v.name] : [],
  );
}
