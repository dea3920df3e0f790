/**
 * The AWS Control Tower proactive controls (as `@cdklabs/cdk-validator-cfnguard` checks them) the
 * stacks do not meet, on purpose, with the reason. The infra tests run the validator over both
 * profiles and fail on any finding not listed here, and on any listed one that no longer occurs.
 * README.md ("Security") shows the same list.
 */
export interface ControlTowerException {
  /** The control's id (Control Tower's name). */
  readonly control: string;
  /** The cfn-guard rule that checks it. */
  readonly rule: string;
  /** Where it is not met: the small profile, the production profile, or both. */
  readonly profiles: readonly ('small' | 'production')[];
  readonly reason: string;
}

export const CONTROL_TOWER_EXCEPTIONS: readonly ControlTowerException[] = [
  {
    control: 'CT.CLOUDWATCH.PR.2',
    rule: 'cloudwatch_log_group_retention_period_check',
    profiles: ['small', 'production'],
    reason:
      'Log retention is 14 days (small) and 90 days (production) to keep the log bill in line with the stack; ' +
      'service.logRetentionDays: 365 (or more) meets the control.',
  },
  {
    control: 'CT.CLOUDWATCH.PR.3',
    rule: 'cloudwatch_log_group_encrypted_check',
    profiles: ['small', 'production'],
    reason:
      'Log groups are encrypted at rest by CloudWatch Logs with its own keys; a customer managed KMS key ' +
      '($1/month plus requests, and a key policy for the service) adds key control, not confidentiality. ' +
      'Prompts are not logged unless TOLLGATE_LOG_CONTENT is set.',
  },
  {
    control: 'CT.LAMBDA.PR.3',
    rule: 'lambda_inside_vpc_check',
    profiles: ['small', 'production'],
    reason:
      "The CDK's own custom resource that empties the VPC's default security group runs once per deploy " +
      'and only calls the EC2 API; in the VPC it would need an EC2 endpoint or NAT for nothing. The worker ' +
      'and the DLQ handler do run in the VPC.',
  },
  {
    control: 'CT.SQS.PR.1',
    rule: 'sqs_dlq_check',
    profiles: ['small', 'production'],
    reason:
      'The flagged queue is the dead-letter queue itself; a message the DLQ handler cannot settle stays ' +
      'there (14 days) and keeps the DLQ alarm firing.',
  },
  {
    control: 'CT.EC2.PR.8',
    rule: 'ec2_instance_no_public_ip_check',
    profiles: ['small'],
    reason:
      'The NAT instance of the small profile needs a public address to be a NAT; production uses NAT gateways.',
  },
  {
    control: 'CT.EC2.PR.13',
    rule: 'ec2_instance_detailed_monitoring_enabled_check',
    profiles: ['small'],
    reason:
      'NAT instance of the small profile: detailed monitoring costs about $2/month; basic monitoring is enough.',
  },
  {
    control: 'CT.EC2.PR.19',
    rule: 'ec2_instance_nitro_encryption_in_transit_check',
    profiles: ['small'],
    reason:
      'The t4g.nano NAT instance is not an instance type with Nitro in-transit encryption; traffic through ' +
      'it is TLS end to end (provider, AWS APIs). vpc.natInstanceType or vpc.natType: gateway changes it.',
  },
  {
    control: 'CT.ECS.PR.2',
    rule: 'ecs_container_insights_enabled_check',
    profiles: ['small'],
    reason:
      'Container Insights costs per task and metric; off in the small profile (service.containerInsights).',
  },
  {
    control: 'CT.ELASTICLOADBALANCING.PR.1',
    rule: 'alb_http_to_https_redirection_check',
    profiles: ['small'],
    reason:
      'Without domain.domainName and domain.certificateArn there is no certificate to redirect to: the ' +
      'listener is plain HTTP, with a synth warning. With a domain, HTTP redirects to HTTPS.',
  },
  {
    control: 'CT.ELASTICLOADBALANCING.PR.5',
    rule: 'elbv2_deletion_protection_enabled_check',
    profiles: ['small'],
    reason:
      'The small profile is meant to be torn down with cdk destroy; production turns deletion protection on.',
  },
  {
    control: 'CT.ELASTICLOADBALANCING.PR.6',
    rule: 'elbv2_logging_enabled_check',
    profiles: ['small'],
    reason: 'Access logs are off in the small profile (loadBalancer.accessLogs); production writes them.',
  },
  {
    control: 'CT.S3.PR.10',
    rule: 's3_bucket_default_encryption_kms_check',
    profiles: ['production'],
    reason: 'The access-log bucket: ALB access logs can only be written to SSE-S3 buckets, not SSE-KMS.',
  },
  {
    control: 'CT.S3.PR.2',
    rule: 's3_bucket_logging_enabled_check',
    profiles: ['production'],
    reason: 'The access-log bucket itself: logging access to it would need yet another log bucket.',
  },
  {
    control: 'CT.S3.PR.4',
    rule: 's3_event_notifications_enabled_check',
    profiles: ['production'],
    reason: 'Nothing consumes events of the access-log bucket.',
  },
  {
    control: 'CT.S3.PR.9',
    rule: 's3_bucket_object_lock_enabled_check',
    profiles: ['production'],
    reason:
      'Object Lock would keep access logs past their 90-day lifecycle expiry; the bucket is retained, ' +
      'versioned and TLS-only instead.',
  },
];
