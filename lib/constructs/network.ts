import { Annotations, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** Props for {@link Network}. */
export interface NetworkProps {
  /**
   * Import this existing VPC instead of creating one. Needs a stack with a concrete
   * account and region (`Vpc.fromLookup`). The VPC must have public subnets (for the load
   * balancer) and private subnets with egress (for tasks and the cache). Nothing is added
   * to it (no endpoints, no flow logs): it belongs to its owner.
   * @default - a new VPC
   */
  readonly vpcId?: string;
  /**
   * IPv4 CIDR of a new VPC.
   * @default '10.0.0.0/16'
   */
  readonly cidr?: string;
  /**
   * Availability zones of a new VPC.
   * @default 2
   */
  readonly maxAzs?: number;
  /**
   * NAT gateways (or instances) of a new VPC. With 0, the private subnets are isolated: tasks
   * reach AWS APIs only through VPC endpoints and the upstream only if it is reachable
   * without the internet.
   * @default 1
   */
  readonly natGateways?: number;
  /**
   * Managed NAT gateways, or NAT instances (cheaper, single instance per AZ, no automatic
   * replacement).
   * @default 'gateway'
   */
  readonly natType?: 'gateway' | 'instance';
  /**
   * EC2 instance type of NAT instances.
   * @default 't4g.nano'
   */
  readonly natInstanceType?: string;
  /**
   * Interface endpoints for ECR, CloudWatch Logs, Secrets Manager and SQS, so tasks can
   * start and run without NAT (about $7.30 per endpoint per AZ per month).
   * @default - true when natGateways is 0
   */
  readonly interfaceEndpoints?: boolean;
  /**
   * An interface endpoint for `bedrock-runtime` in the app subnets, so Bedrock calls stay off
   * the NAT (about $7.30 per AZ per month plus $0.01/GB; needed for Bedrock without NAT).
   * @default false
   */
  readonly bedrockEndpoint?: boolean;
  /**
   * VPC flow logs (rejected traffic) to CloudWatch Logs.
   * @default true
   */
  readonly flowLogs?: boolean;
  /**
   * Retention of the flow log group.
   * @default logs.RetentionDays.TWO_WEEKS
   */
  readonly flowLogRetention?: logs.RetentionDays;
  /**
   * What happens to the flow log group when the stack is deleted.
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The network: a VPC over two AZs with public subnets for the load balancer, private
 * subnets with egress for tasks, isolated subnets for the cache, and a DynamoDB gateway
 * endpoint (free, keeps table traffic off the NAT).
 */
export class Network extends Construct {
  /** The VPC, new or imported. */
  readonly vpc: ec2.IVpc;
  /** Where the load balancer lives. */
  readonly publicSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PUBLIC };
  /** Where the Fargate tasks run (no public IPs). */
  readonly appSubnets: ec2.SubnetSelection;
  /** Where the cache lives (no route to the internet in a new VPC). */
  readonly dataSubnets: ec2.SubnetSelection;

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);

    if (props.vpcId !== undefined) {
      const stack = Stack.of(this);
      if (Token.isUnresolved(stack.account) || Token.isUnresolved(stack.region)) {
        throw new Error(
          `Importing VPC ${props.vpcId} needs a stack with an explicit account and region ` +
            '(Vpc.fromLookup); set "account" and "region" in the config.',
        );
      }
      this.vpc = ec2.Vpc.fromLookup(this, 'Vpc', { vpcId: props.vpcId });
      this.appSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
      this.dataSubnets = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
      // Endpoints and flow logs of an imported VPC belong to its owner: adding a second
      // DynamoDB route to its route tables would fail if one exists already.
      return;
    }

    const natGateways = props.natGateways ?? 1;
    const appSubnetType =
      natGateways > 0 ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED;
    const natProvider =
      natGateways > 0 && props.natType === 'instance'
        ? ec2.NatProvider.instanceV2({
            instanceType: new ec2.InstanceType(props.natInstanceType ?? 't4g.nano'),
            // Rules below admit the VPC only; the default would admit 0.0.0.0/0.
            defaultAllowedTraffic: ec2.NatTrafficDirection.OUTBOUND_ONLY,
            // Its own address: the public subnets assign none on launch (only the NAT needs one).
            associatePublicIpAddress: true,
          })
        : undefined;

    const cidr = props.cidr ?? '10.0.0.0/16';
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(cidr),
      maxAzs: props.maxAzs ?? 2,
      natGateways,
      ...(natProvider && { natGatewayProvider: natProvider }),
      subnetConfiguration: [
        // The load balancer and NAT gateways get their addresses themselves; nothing launched here
        // gets a public IP by accident (Control Tower CT.EC2.PR.11).
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
        { name: 'app', subnetType: appSubnetType, cidrMask: 22 },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 26 },
      ],
      gatewayEndpoints: {
        DynamoDb: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
        // ECR stores image layers in S3; without NAT the pull goes through this endpoint.
        ...(natGateways === 0 && { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } }),
      },
    });
    this.vpc = vpc;
    this.appSubnets = { subnetGroupName: 'app' };
    this.dataSubnets = { subnetGroupName: 'data' };

    if (natProvider) {
      natProvider.connections.allowFrom(ec2.Peer.ipv4(cidr), ec2.Port.allTraffic(), 'NAT for the VPC');
      for (const instance of natProvider.gatewayInstances) hardenNatInstance(instance);
    }

    if (natGateways === 0) {
      Annotations.of(this).addWarningV2(
        '@tollgate/no-nat',
        'vpc.natGateways is 0: tasks have no route to the internet. They start through VPC ' +
          'endpoints, but the upstream (upstream.baseUrl) must be reachable without the internet.',
      );
    }

    const services: Record<string, ec2.InterfaceVpcEndpointAwsService> = {};
    if (props.interfaceEndpoints ?? natGateways === 0) {
      Object.assign(services, {
        EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
        EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
        Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
        SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
        Sqs: ec2.InterfaceVpcEndpointAwsService.SQS,
      });
    }
    if (props.bedrockEndpoint)
      services['BedrockRuntime'] = ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME;
    for (const [name, service] of Object.entries(services)) {
      const endpoint = vpc.addInterfaceEndpoint(name, { service, subnets: this.appSubnets, open: false });
      endpoint.connections.allowFrom(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), 'HTTPS from the VPC');
    }

    if (props.flowLogs ?? true) {
      const logGroup = new logs.LogGroup(this, 'FlowLogs', {
        retention: props.flowLogRetention ?? logs.RetentionDays.TWO_WEEKS,
        removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
      });
      vpc.addFlowLog('FlowLog', {
        destination: ec2.FlowLogDestination.toCloudWatchLogs(logGroup),
        // Rejected traffic is the security signal; accepted traffic would cost more than
        // the rest of the idle stack's logs together.
        trafficType: ec2.FlowLogTrafficType.REJECT,
      });
    } else {
      Validations.of(vpc).acknowledge({
        id: 'AwsSolutions-VPC7',
        reason: 'Flow logs were turned off in the deployment config (vpc.flowLogs: false).',
      });
    }
  }
}

function hardenNatInstance(instance: ec2.Instance): void {
  const cfn = instance.instance;
  // Amazon Linux 2023's root device; encrypted with the account's default EBS key.
  cfn.blockDeviceMappings = [
    {
      deviceName: '/dev/xvda',
      ebs: { encrypted: true, volumeType: 'gp3', volumeSize: 8, deleteOnTermination: true },
    },
  ];
  cfn.metadataOptions = { httpTokens: 'required', httpEndpoint: 'enabled' };
  const v = Validations.of(instance);
  v.acknowledge({
    id: 'AwsSolutions-EC28',
    reason: 'NAT instance of the small profile: basic monitoring is enough, detailed costs extra.',
  });
  v.acknowledge({
    id: 'AwsSolutions-EC29',
    reason:
      'NAT instance of the small profile: it holds no state and CloudFormation recreates it; ' +
      'the production profile uses managed NAT gateways.',
  });
}
