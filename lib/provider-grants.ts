/**
 * What each provider family needs from AWS, from the catalogue: the one seam where the CDK app
 * learns what to grant. A family the runtime adds gets one entry in {@link FAMILY_NEEDS}; synth
 * fails for a family that has none, rather than deploying a catalogue nothing can call.
 *
 * - `openai` (any OpenAI-compatible upstream): the key in the entry's `apiKeyEnv` (default
 *   OPENAI_API_KEY), from Secrets Manager.
 * - `bedrock`: `bedrock:InvokeModel` and `bedrock:InvokeModelWithResponseStream` on exactly the
 *   foundation-model and inference-profile ARNs the entries name (see {@link bedrockResources}).
 * - `simulator`: nothing.
 */
import { ConfigError, type ConfigIssue } from './config-error';

/** The catalogue fields the grants read (entries are validated by the runtime's schema first). */
export interface CatalogueEntryFields {
  readonly id: string;
  readonly provider: string;
  readonly upstreamModel?: string | undefined;
  /** Bedrock: the entry's region. @default the stack's region */
  readonly region?: string | undefined;
  /** OpenAI-compatible: the variable holding the key. @default OPENAI_API_KEY */
  readonly apiKeyEnv?: string | undefined;
}

/** Where ARNs point: concrete strings or CloudFormation tokens (`Aws.REGION`...). */
export interface GrantScope {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
  /**
   * Destination regions of geographic cross-region inference profiles, by id prefix.
   * @default {@link CROSS_REGION_PROFILE_REGIONS}
   */
  readonly profileRegions?: Readonly<Record<string, readonly string[]>>;
}

/** The actions a Bedrock model needs (Converse needs InvokeModel, ConverseStream the other). */
export const BEDROCK_INVOKE_ACTIONS = [
  'bedrock:InvokeModel',
  'bedrock:InvokeModelWithResponseStream',
] as const;

/** The key variable of OpenAI-compatible entries that name none. */
export const DEFAULT_KEY_VARIABLE = 'OPENAI_API_KEY';

/**
 * Destination regions of the geographic cross-region (system-defined) inference profiles, by the
 * prefix of the profile id (`us.anthropic...`). The union of the destination regions AWS lists for
 * each geography's profiles in "Supported Regions and models for inference profiles" (Amazon
 * Bedrock user guide, read 2026-12); a given model's profile routes to a subset, and AWS does not
 * add regions to an existing profile. Bedrock authorizes the foundation model in the region that
 * serves the request, so each of them needs a grant. `deployment config bedrock.profileRegions`
 * overrides an entry (a new region, a narrower set). `global.` profiles route to every commercial
 * region and are granted through the region-less foundation-model ARN AWS documents for them.
 */
export const CROSS_REGION_PROFILE_REGIONS: Readonly<Record<string, readonly string[]>> = {
  us: ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2'],
  'us-gov': ['us-gov-east-1', 'us-gov-west-1'],
  ca: ['ca-central-1', 'ca-west-1'],
  eu: [
    'eu-central-1',
    'eu-central-2',
    'eu-north-1',
    'eu-south-1',
    'eu-south-2',
    'eu-west-1',
    'eu-west-2',
    'eu-west-3',
  ],
  apac: [
    'ap-northeast-1',
    'ap-northeast-2',
    'ap-northeast-3',
    'ap-south-1',
    'ap-south-2',
    'ap-southeast-1',
    'ap-southeast-2',
    'ap-southeast-3',
    'ap-southeast-4',
  ],
  jp: ['ap-northeast-1', 'ap-northeast-3'],
  au: ['ap-southeast-2', 'ap-southeast-4'],
};

/** The prefix of global cross-region inference profiles. */
const GLOBAL_PREFIX = 'global';

/** What the whole catalogue needs. */
export interface ProviderNeeds {
  /** Variables that must hold a provider key from Secrets Manager, sorted. */
  readonly keyVariables: readonly string[];
  /** Bedrock ARNs to allow {@link BEDROCK_INVOKE_ACTIONS} on (deduplicated, in catalogue order). */
  readonly bedrockResources: readonly string[];
  /** Whether any entry is a Bedrock model (the bedrock-runtime endpoint is worth having). */
  readonly usesBedrock: boolean;
}

type Need = { readonly key: string } | { readonly bedrock: readonly string[] };

/** Per family: what one of its catalogue entries needs. */
const FAMILY_NEEDS: Readonly<Record<string, (m: CatalogueEntryFields, scope: GrantScope) => Need[]>> = {
  openai: (m) => [{ key: m.apiKeyEnv ?? DEFAULT_KEY_VARIABLE }],
  bedrock: (m, scope) => [{ bedrock: bedrockResources(m, scope) }],
  simulator: () => [],
};

/**
 * What the catalogue needs. `discovery`: the catalogue is empty and OPENAI_BASE_URL lists the
 * models at run time (they are OpenAI-compatible, keyed by OPENAI_API_KEY). Throws a
 * {@link ConfigError} naming every entry it cannot grant.
 */
export function providerNeeds(
  models: readonly CatalogueEntryFields[],
  scope: GrantScope,
  opts: { discovery?: boolean; field?: string } = {},
): ProviderNeeds {
  const field = opts.field ?? 'models';
  const keys = new Set<string>(opts.discovery ? [DEFAULT_KEY_VARIABLE] : []);
  const resources: string[] = [];
  const issues: ConfigIssue[] = [];
  let usesBedrock = false;
  models.forEach((m, i) => {
    const needs = FAMILY_NEEDS[m.provider];
    if (!needs) {
      issues.push({
        path: `${field}.${i}.provider`,
        message: `the CDK app does not know what provider '${m.provider}' needs (add it to lib/provider-grants.ts)`,
      });
      return;
    }
    try {
      for (const n of needs(m, scope)) {
        if ('key' in n) keys.add(n.key);
        else {
          usesBedrock = true;
          for (const r of n.bedrock) if (!resources.includes(r)) resources.push(r);
        }
      }
    } catch (err) {
      issues.push({ path: `${field}.${i}.upstreamModel`, message: (err as Error).message });
    }
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return { keyVariables: [...keys].sort(), bedrockResources: resources, usesBedrock };
}

/**
 * The ARNs a Bedrock entry is invoked through. `upstreamModel` (default `id`) is one of:
 * - a foundation model id (`amazon.nova-lite-v1:0`): that model in the entry's region;
 * - a geographic cross-region profile id (`us.anthropic...`): the profile in the entry's region
 *   and the foundation model in the entry's region and in every destination region;
 * - a global profile id (`global.anthropic...`): the profile, the foundation model in the entry's
 *   region, and the region-less foundation-model ARN (`arn:aws:bedrock:::foundation-model/<id>`);
 * - an ARN: a foundation model, a system-defined inference profile (expanded as above), or a
 *   provisioned / custom / imported model (granted as is). Application inference profiles are
 *   refused: the models they route to are not visible at synth time.
 */
export function bedrockResources(m: CatalogueEntryFields, scope: GrantScope): string[] {
  const id = m.upstreamModel ?? m.id;
  const region = m.region ?? scope.region;
  if (id.startsWith('arn:')) return fromArn(id, scope);
  const profile = profileOf(id, scope);
  if (!profile) return [foundationModel(scope.partition, region, id)];
  return profileResources(scope, region, scope.account, id, profile.prefix, profile.model);
}

const ARN_RE = /^arn:([a-z-]+):bedrock:([a-z0-9-]*):(\d{12})?:([a-z-]+)\/(.+)$/;

function fromArn(arn: string, scope: GrantScope): string[] {
  const m = ARN_RE.exec(arn);
  if (!m)
    throw new Error(`'${arn}' is not a Bedrock ARN (arn:<partition>:bedrock:<region>:<account>:<type>/<id>)`);
  const [, partition = '', region = '', account = '', type, rest = ''] = m;
  switch (type) {
    case 'foundation-model':
      return [arn];
    case 'inference-profile': {
      const profile = profileOf(rest, scope);
      if (!profile) return [arn];
      return profileResources({ ...scope, partition }, region, account, rest, profile.prefix, profile.model);
    }
    case 'application-inference-profile':
      throw new Error(
        'application inference profiles route to models the CDK app cannot see at synth time; ' +
          'use the system-defined profile id or the foundation model id it wraps',
      );
    default:
      // provisioned-model, custom-model-deployment, imported-model, ...: the ARN is what Bedrock authorizes.
      return [arn];
  }
}

function profileOf(id: string, scope: GrantScope): { prefix: string; model: string } | null {
  const dot = id.indexOf('.');
  if (dot < 1) return null;
  const prefix = id.slice(0, dot);
  const known = prefix === GLOBAL_PREFIX || prefix in (scope.profileRegions ?? CROSS_REGION_PROFILE_REGIONS);
  return known ? { prefix, model: id.slice(dot + 1) } : null;
}

function profileResources(
  scope: GrantScope,
  region: string,
  account: string,
  profileId: string,
  prefix: string,
  model: string,
): string[] {
  const p = scope.partition;
  const out = [
    `arn:${p}:bedrock:${region}:${account}:inference-profile/${profileId}`,
    foundationModel(p, region, model),
  ];
  if (prefix === GLOBAL_PREFIX) {
    out.push(`arn:${p}:bedrock:::foundation-model/${model}`);
    return out;
  }
  const regions = (scope.profileRegions ?? CROSS_REGION_PROFILE_REGIONS)[prefix] ?? [];
  for (const r of regions) {
    const arn = foundationModel(p, r, model);
    if (!out.includes(arn)) out.push(arn);
  }
  return out;
}

function foundationModel(partition: string, region: string, model: string): string {
  return `arn:${partition}:bedrock:${region}::foundation-model/${model}`;
}
