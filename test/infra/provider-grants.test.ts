/**
 * The grants seam: what each catalogue entry needs from AWS, by family.
 */
import { ConfigError } from '../../lib/config';
import {
  bedrockResources,
  CROSS_REGION_PROFILE_REGIONS,
  type GrantScope,
  providerNeeds,
} from '../../lib/provider-grants';

const scope: GrantScope = { partition: 'aws', region: 'eu-west-1', account: '123456789012' };
const bedrock = (upstreamModel: string, region?: string) => ({
  id: 'm',
  provider: 'bedrock',
  upstreamModel,
  ...(region !== undefined && { region }),
});

describe('providerNeeds', () => {
  it('asks a key per OpenAI-compatible variable, nothing for the simulator', () => {
    const needs = providerNeeds(
      [
        { id: 'a', provider: 'openai' },
        { id: 'b', provider: 'openai', apiKeyEnv: 'GROQ_API_KEY' },
        { id: 'c', provider: 'openai' },
        { id: 'd', provider: 'simulator' },
      ],
      scope,
    );
    expect(needs).toEqual({
      keyVariables: ['GROQ_API_KEY', 'OPENAI_API_KEY'],
      bedrockResources: [],
      usesBedrock: false,
    });
  });

  it('asks OPENAI_API_KEY for discovered models and nothing for an empty catalogue', () => {
    expect(providerNeeds([], scope, { discovery: true }).keyVariables).toEqual(['OPENAI_API_KEY']);
    expect(providerNeeds([], scope).keyVariables).toEqual([]);
  });

  it('refuses a family it has no grants for, naming the entry', () => {
    const err = (() => {
      try {
        providerNeeds(
          [
            { id: 'x', provider: 'simulator' },
            { id: 'y', provider: 'anthropic' },
          ],
          scope,
        );
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues).toEqual([
      { path: 'models.1.provider', message: expect.stringContaining("'anthropic'") },
    ]);
  });

  it('deduplicates Bedrock ARNs across entries', () => {
    const needs = providerNeeds(
      [bedrock('amazon.nova-lite-v1:0'), { ...bedrock('amazon.nova-lite-v1:0'), id: 'n' }],
      scope,
    );
    expect(needs.bedrockResources).toEqual([
      'arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-lite-v1:0',
    ]);
    expect(needs.usesBedrock).toBe(true);
  });
});

describe('bedrockResources', () => {
  it('grants a foundation model id in the entry region, else the stack region', () => {
    expect(bedrockResources(bedrock('meta.llama3-70b-instruct-v1:0', 'us-west-2'), scope)).toEqual([
      'arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-70b-instruct-v1:0',
    ]);
    expect(bedrockResources({ id: 'amazon.titan-embed-text-v2:0', provider: 'bedrock' }, scope)).toEqual([
      'arn:aws:bedrock:eu-west-1::foundation-model/amazon.titan-embed-text-v2:0',
    ]);
  });

  it('grants a geographic profile plus its model in every destination region', () => {
    const arns = bedrockResources(bedrock('eu.anthropic.claude-sonnet-4-5-20250929-v1:0'), scope);
    expect(arns[0]).toBe(
      'arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0',
    );
    expect(arns.slice(1).sort()).toEqual(
      (CROSS_REGION_PROFILE_REGIONS['eu'] ?? [])
        .map((r) => `arn:aws:bedrock:${r}::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0`)
        .sort(),
    );
  });

  it('grants a global profile through the region-less foundation-model ARN', () => {
    expect(bedrockResources(bedrock('global.amazon.nova-2-lite-v1:0', 'us-east-1'), scope)).toEqual([
      'arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.amazon.nova-2-lite-v1:0',
      'arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-2-lite-v1:0',
      'arn:aws:bedrock:::foundation-model/amazon.nova-2-lite-v1:0',
    ]);
  });

  it('takes overridden destination regions for a prefix', () => {
    const arns = bedrockResources(bedrock('jp.anthropic.claude-haiku-4-5-20251001-v1:0', 'ap-northeast-1'), {
      ...scope,
      profileRegions: { ...CROSS_REGION_PROFILE_REGIONS, jp: ['ap-northeast-1'] },
    });
    expect(arns).toEqual([
      'arn:aws:bedrock:ap-northeast-1:123456789012:inference-profile/jp.anthropic.claude-haiku-4-5-20251001-v1:0',
      'arn:aws:bedrock:ap-northeast-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0',
    ]);
  });

  it('reads ARNs: a foundation model as is, a system profile expanded, a provisioned model as is', () => {
    const fm = 'arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0';
    expect(bedrockResources(bedrock(fm), scope)).toEqual([fm]);
    const profile = 'arn:aws:bedrock:us-east-2:210987654321:inference-profile/us.amazon.nova-pro-v1:0';
    const expanded = bedrockResources(bedrock(profile), scope);
    expect(expanded[0]).toBe(profile);
    expect(expanded).toContain('arn:aws:bedrock:us-west-2::foundation-model/amazon.nova-pro-v1:0');
    const provisioned = 'arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123def456';
    expect(bedrockResources(bedrock(provisioned), scope)).toEqual([provisioned]);
  });

  it('refuses application inference profiles and what is not a Bedrock ARN', () => {
    expect(() =>
      bedrockResources(
        bedrock('arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc'),
        scope,
      ),
    ).toThrow(/application inference profiles/);
    expect(() => bedrockResources(bedrock('arn:aws:s3:::bucket'), scope)).toThrow(/not a Bedrock ARN/);
  });
});
