import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/** Props for {@link AppSecrets}. */
export interface AppSecretsProps {
  /**
   * Name or complete ARN of an existing secret (plain string) holding the upstream
   * provider's API key.
   * @default - a new secret with a random placeholder value, to be replaced after deploy
   */
  readonly upstreamApiKeySecretName?: string;
  /**
   * More upstream keys for catalogue models with their own `apiKeyEnv`: environment
   * variable name -> name or complete ARN of an existing secret.
   * @default {}
   */
  readonly extraApiKeySecrets?: Readonly<Record<string, string>>;
  /**
   * What happens to the secrets this construct creates when the stack is deleted.
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The application's secrets: the generated admin API key and the upstream provider key(s).
 * Values reach the tasks as ECS secrets and the Lambdas by ARN; none of them ever appears
 * in the template.
 */
export class AppSecrets extends Construct {
  /** The admin API key (`Authorization: Bearer` for `/admin/*`), generated at deploy time. */
  readonly adminApiKey: secretsmanager.ISecret;
  /** The upstream provider's API key. */
  readonly upstreamApiKey: secretsmanager.ISecret;
  /** Extra upstream keys by environment variable name. */
  readonly extraApiKeys: Readonly<Record<string, secretsmanager.ISecret>>;
  /** Whether {@link upstreamApiKey} was created here (and holds a placeholder until replaced). */
  readonly upstreamApiKeyIsPlaceholder: boolean;

  constructor(scope: Construct, id: string, props: AppSecretsProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;

    const admin = new secretsmanager.Secret(this, 'AdminApiKey', {
      description: 'Tollgate admin API key (Bearer token for /admin/*). Rotate by putting a new value.',
      generateSecretString: { excludePunctuation: true, passwordLength: 48 },
      removalPolicy,
    });
    acknowledgeNoRotation(
      admin,
      'an admin bearer token; rotate it by putting a new value and restarting tasks',
    );
    this.adminApiKey = admin;

    if (props.upstreamApiKeySecretName !== undefined) {
      this.upstreamApiKey = importSecret(this, 'UpstreamApiKey', props.upstreamApiKeySecretName);
      this.upstreamApiKeyIsPlaceholder = false;
    } else {
      const upstream = new secretsmanager.Secret(this, 'UpstreamApiKey', {
        description:
          'Upstream LLM provider API key (OPENAI_API_KEY). Holds a random placeholder: ' +
          'put the real key with `aws secretsmanager put-secret-value`.',
        generateSecretString: { excludePunctuation: true, passwordLength: 32 },
        removalPolicy,
      });
      acknowledgeNoRotation(upstream, "the provider's key, issued by the provider; rotate it there");
      this.upstreamApiKey = upstream;
      this.upstreamApiKeyIsPlaceholder = true;
    }

    const extra: Record<string, secretsmanager.ISecret> = {};
    for (const [envName, secretName] of Object.entries(props.extraApiKeySecrets ?? {})) {
      extra[envName] = importSecret(this, `Extra${envName}`, secretName);
    }
    this.extraApiKeys = extra;
  }
}

/** A secret by complete ARN (exact) or by name (the grant then covers `name-??????`). */
function importSecret(scope: Construct, id: string, nameOrArn: string): secretsmanager.ISecret {
  return nameOrArn.startsWith('arn:')
    ? secretsmanager.Secret.fromSecretCompleteArn(scope, id, nameOrArn)
    : secretsmanager.Secret.fromSecretNameV2(scope, id, nameOrArn);
}

function acknowledgeNoRotation(secret: secretsmanager.Secret, what: string): void {
  Validations.of(secret).acknowledge({
    id: 'AwsSolutions-SMG4',
    reason: `No rotation Lambda: ${what}.`,
  });
}
