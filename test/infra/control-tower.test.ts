/**
 * AWS Control Tower proactive controls, checked offline with `@cdklabs/cdk-validator-cfnguard`
 * over both profiles: every finding is a documented exception (lib/control-tower-exceptions.ts),
 * and every documented exception still occurs.
 */
import { CfnGuardValidator } from '@cdklabs/cdk-validator-cfnguard';
import type { IPolicyValidationContextBeta1 } from 'aws-cdk-lib';
import { CONTROL_TOWER_EXCEPTIONS } from '../../lib/control-tower-exceptions';
import { buildStack, PRODUCTION_CONFIG } from './helpers';

function findings(input: Parameters<typeof buildStack>[0]): Map<string, string[]> {
  const built = buildStack(input, { bundle: false });
  const template = built.app.synth().getStackByName(built.stack.stackName).templateFullPath;
  const context: IPolicyValidationContextBeta1 = { templatePaths: [template], appConstruct: built.app };
  const report = new CfnGuardValidator().validate(context);
  return new Map(
    report.violations.map((v) => [v.ruleName, v.violatingResources.map((r) => r.resourceLogicalId).sort()]),
  );
}

describe.each([
  ['small', {}],
  ['production', PRODUCTION_CONFIG],
] as const)('Control Tower controls, %s profile', (profile, input) => {
  let found: Map<string, string[]>;
  beforeAll(() => {
    found = findings(input);
  });
  const expected = CONTROL_TOWER_EXCEPTIONS.filter((e) => e.profiles.includes(profile));

  it('flags only the documented exceptions', () => {
    const documented = new Set(expected.map((e) => e.rule));
    const undocumented = [...found.keys()].filter((rule) => !documented.has(rule));
    expect(undocumented).toEqual([]);
  });

  it('still flags every documented exception (the list is not stale)', () => {
    expect(expected.map((e) => e.rule).filter((rule) => !found.has(rule))).toEqual([]);
  });

  it('meets the free wins: non-root task user, memory limit, no auto-assigned public IPs, Lambdas of ours in the VPC', () => {
    for (const rule of [
      'ecs_task_definition_nonroot_user_check',
      'ecs_task_definition_memory_hard_limit_check',
      'subnet_auto_assign_public_ip_disabled_check',
    ])
      expect(found.has(rule)).toBe(false);
    expect(found.get('lambda_inside_vpc_check')).toEqual([
      expect.stringMatching(/^CustomVpcRestrictDefaultSGCustomResourceProviderHandler/),
    ]);
  });
});
