import { Duration, Names, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/** The port of both cache kinds (ElastiCache Serverless also serves replica reads on port + 1). */
export const CACHE_PORT = 6379;

const ENGINE_VERSIONS = {
  valkey: { node: '8.0', serverlessMajor: '8' },
  redis: { node: '7.1', serverlessMajor: '7' },
} as const;

/** Props for {@link Cache}. */
export interface CacheProps {
  /** The VPC the cache lives in. */
  readonly vpc: ec2.IVpc;
  /** Subnets for the cache nodes (one per AZ). */
  readonly subnets: ec2.SubnetSelection;
  /**
   * A node-based replication group, or ElastiCache Serverless.
   * @default 'node'
   */
  readonly mode?: 'node' | 'serverless';
  /**
   * Cache engine. Valkey is wire-compatible with Redis OSS and about 20% cheaper.
   * @default 'valkey'
   */
  readonly engine?: 'valkey' | 'redis';
  /**
   * Node type (node mode).
   * @default 'cache.t4g.micro'
   */
  readonly nodeType?: string;
  /**
   * Read replicas (node mode). With one or more: Multi-AZ with automatic failover.
   * @default 0
   */
  readonly replicas?: number;
  /**
   * Maximum data storage in GB (serverless mode); caps the storage bill.
   * @default 1
   */
  readonly serverlessMaxStorageGb?: number;
  /**
   * Days of automatic snapshots (0 turns them off). The cache holds the budget counters,
   * so a snapshot is what survives a lost primary without a replica.
   * @default 1
   */
  readonly snapshotRetentionDays?: number;
  /**
   * RETAIN keeps a final snapshot (node mode) when the stack is deleted; DESTROY does not.
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The cache: an ElastiCache (Valkey or Redis OSS) replication group with TLS in transit,
 * encryption at rest and an AUTH token from Secrets Manager; or ElastiCache Serverless with
 * a password user. Nothing reaches it unless allowed through {@link connections}.
 */
export class Cache extends Construct implements ec2.IConnectable {
  readonly connections: ec2.Connections;
  /** Primary endpoint host. */
  readonly host: string;
  /** Endpoint port. */
  readonly port: number = CACHE_PORT;
  /** The AUTH token (plain string secret). */
  readonly authToken: secretsmanager.Secret;
  /** 'node' or 'serverless'. */
  readonly mode: 'node' | 'serverless';
  /** CacheClusterId of every node (node mode), for per-node metrics. */
  readonly memberClusterIds: readonly string[];
  /** Name of the serverless cache (serverless mode). */
  readonly serverlessCacheName?: string;
  private readonly maxStorageBytes?: number;

  constructor(scope: Construct, id: string, props: CacheProps) {
    super(scope, id);
    this.mode = props.mode ?? 'node';
    const engine = props.engine ?? 'valkey';
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Tollgate cache: reachable only from the chat service tasks',
      allowAllOutbound: false,
    });
    const portRange =
      this.mode === 'serverless' ? ec2.Port.tcpRange(CACHE_PORT, CACHE_PORT + 1) : ec2.Port.tcp(CACHE_PORT);
    this.connections = new ec2.Connections({ securityGroups: [securityGroup], defaultPort: portRange });

    this.authToken = new secretsmanager.Secret(this, 'AuthToken', {
      description: 'Tollgate cache AUTH token',
      // ElastiCache tokens: 16-128 printable characters without / " @ or spaces.
      generateSecretString: { excludePunctuation: true, passwordLength: 64 },
      removalPolicy,
    });
    Validations.of(this.authToken).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'The AUTH token rotates only together with ElastiCache (modify-replication-group ' +
        '--auth-token-update-strategy ROTATE); a rotation Lambda cannot do that safely.',
    });
    // CloudFormation resolves this `{{resolve:secretsmanager:...}}` reference at deploy
    // time; the token itself never appears in the template.
    const tokenReference = this.authToken.secretValue.unsafeUnwrap();
    const subnetIds = props.vpc.selectSubnets(props.subnets).subnetIds;

    if (this.mode === 'serverless') {
      const name = Names.uniqueResourceName(this, { maxLength: 40, separator: '-' }).toLowerCase();
      const user = new elasticache.CfnUser(this, 'User', {
        engine,
        userId: `${name}-app`.slice(0, 40),
        userName: 'default',
        accessString: 'on ~* +@all',
        authenticationMode: { Type: 'password', Passwords: [tokenReference] },
      });
      const userGroup = new elasticache.CfnUserGroup(this, 'UserGroup', {
        engine,
        userGroupId: `${name}-users`.slice(0, 40),
        userIds: [user.userId],
      });
      userGroup.addResourceDependency(user);
      const maxGb = props.serverlessMaxStorageGb ?? 1;
      const cache = new elasticache.CfnServerlessCache(this, 'Serverless', {
        serverlessCacheName: name,
        engine,
        majorEngineVersion: ENGINE_VERSIONS[engine].serverlessMajor,
        description: 'Tollgate cache (serverless)',
        securityGroupIds: [securityGroup.securityGroupId],
        subnetIds,
        userGroupId: userGroup.userGroupId,
        cacheUsageLimits: { dataStorage: { maximum: maxGb, unit: 'GB' } },
        snapshotRetentionLimit: props.snapshotRetentionDays ?? 1,
      });
      cache.addResourceDependency(userGroup);
      cache.applyRemovalPolicy(RemovalPolicy.DESTROY);
      this.host = cache.attrEndpointAddress;
      this.serverlessCacheName = name;
      this.memberClusterIds = [];
      this.maxStorageBytes = maxGb * 1024 ** 3;
      return;
    }

    const replicas = props.replicas ?? 0;
    const subnetGroup = new elasticache.CfnSubnetGroup(this, 'SubnetGroup', {
      description: 'Tollgate cache subnets',
      subnetIds,
    });
    const group = new elasticache.CfnReplicationGroup(this, 'ReplicationGroup', {
      replicationGroupDescription: 'Tollgate rate limits, budgets and response cache',
      engine,
      engineVersion: ENGINE_VERSIONS[engine].node,
      cacheNodeType: props.nodeType ?? 'cache.t4g.micro',
      numCacheClusters: 1 + replicas,
      automaticFailoverEnabled: replicas > 0,
      multiAzEnabled: replicas > 0,
      port: CACHE_PORT,
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [securityGroup.securityGroupId],
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      atRestEncryptionEnabled: true,
      authToken: tokenReference,
      autoMinorVersionUpgrade: true,
      snapshotRetentionLimit: props.snapshotRetentionDays ?? 1,
    });
    group.applyRemovalPolicy(
      removalPolicy === RemovalPolicy.RETAIN ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
    );
    this.host = group.attrPrimaryEndPointAddress;
    // Member clusters of a cluster-mode-disabled group are named <group id>-001, -002, ...
    this.memberClusterIds = Array.from(
      { length: 1 + replicas },
      (_, i) => `${group.ref}-${String(i + 1).padStart(3, '0')}`,
    );

    if (engine === 'redis') {
      Validations.of(group).acknowledge({
        id: 'AwsSolutions-AEC5',
        reason:
          'The port is reachable only from the chat service security group; a non-default port ' +
          'would add no protection and break client defaults.',
      });
    }
    if (replicas === 0) {
      Validations.of(group).acknowledge({
        id: 'AwsSolutions-AEC4',
        reason:
          'Small profile: one node keeps the idle cost under target; the production profile ' +
          'runs a replica in another AZ with automatic failover (cache.replicas >= 1).',
      });
    }
  }

  /** Memory used, in percent of what the cache may use (the highest node, node mode). */
  metricMemoryUsagePercent(
    period: Duration = Duration.minutes(5),
  ): cloudwatch.Metric | cloudwatch.MathExpression {
    if (this.serverlessCacheName !== undefined) {
      return new cloudwatch.MathExpression({
        expression: `100 * bytes / ${this.maxStorageBytes}`,
        usingMetrics: {
          bytes: new cloudwatch.Metric({
            namespace: 'AWS/ElastiCache',
            metricName: 'BytesUsedForCache',
            dimensionsMap: { CacheClusterId: this.serverlessCacheName },
            statistic: cloudwatch.Stats.MAXIMUM,
            period,
          }),
        },
        label: 'Cache memory used (% of the storage limit)',
        period,
      });
    }
    const perNode = this.memberClusterIds.map(
      (clusterId) =>
        new cloudwatch.Metric({
          namespace: 'AWS/ElastiCache',
          metricName: 'DatabaseMemoryUsagePercentage',
          dimensionsMap: { CacheClusterId: clusterId },
          statistic: cloudwatch.Stats.MAXIMUM,
          period,
        }),
    );
    if (perNode.length === 1) return perNode[0]!;
    const usingMetrics = Object.fromEntries(perNode.map((m, i) => [`node${i}`, m]));
    return new cloudwatch.MathExpression({
      expression: `MAX([${Object.keys(usingMetrics).join(', ')}])`,
      usingMetrics,
      label: 'Cache memory used (%, highest node)',
      period,
    });
  }
}
