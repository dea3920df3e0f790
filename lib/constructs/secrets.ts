import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/** The variable of the provider key a new secret is created for when none is imported. */
const DEFAULT_PROVIDER_KEY_VARIABLE = 'OPENAI_API_KEY';

/** Props for {@link AppSecrets}. */
export interface AppSecretsProps {
  /**
   * The provider key variables the catalogue needs (from the grants seam, `providerNeeds`).
   * Only these get a secret: a catalogue without OpenAI-compatible models creates none.
   * @default []
   */
  readonly providerKeyVariables?: readonly string[];
  /**
   * Name or complete ARN of an existing secret (plain string) holding OPENAI_API_KEY.
   * @default - a new secret with a random placeholder value, to be replaced after deploy
   */
  readonly defaultProviderKeySecretName?: string;
  /**
   * Existing secrets for other key variables (a catalogue entry's `apiKeyEnv`): variable ->
   * secret name or complete ARN. Each is passed to the runtime, named by an entry or not.
   * @default {}
   */
  readonly extraProviderKeySecrets?: Readonly<Record<string, string>>;
  /**
   * What happens to the secrets this construct creates when the stack is deleted.
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The application's secrets: the generated admin API key and the provider keys the catalogue
 * needs. Values reach the tasks as ECS secrets and the Lambdas by ARN; none of them ever appears
 * in the template.
 */
export class AppSecrets extends Construct {
  /** The admin API key (`Authorization: Bearer` for `/admin/*`), generated at deploy time. */
  readonly adminApiKey: secretsmanager.ISecret;
  /** Provider keys by environment variable (only those the catalogue needs). */
  readonly providerKeys: Readonly<Record<string, secretsmanager.ISecret>>;
  /** The secret created with a placeholder for OPENAI_API_KEY (put the real key after deploy). */
  readonly placeholderProviderKey?: secretsmanager.Secret;

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

    const keys: Record<string, secretsmanager.ISecret> = {};
    const extra = props.extraProviderKeySecrets ?? {};
    // Extra keys are imported even when no entry names them yet: they were asked for by name.
    const variables = new Set([...(props.providerKeyVariables ?? []), ...Object.keys(extra)]);
    for (const variable of variables) {
      const imported =
        variable === DEFAULT_PROVIDER_KEY_VARIABLE ? props.defaultProviderKeySecretName : extra[variable];
      if (imported !== undefined) {
        // The construct id of the default key stays as before, so existing stacks keep the secret.
        const cid = variable === DEFAULT_PROVIDER_KEY_VARIABLE ? 'UpstreamApiKey' : `Extra${variable}`;
        keys[variable] = importSecret(this, cid, imported);
      } else if (variable === DEFAULT_PROVIDER_KEY_VARIABLE) {
        const created = new secretsmanager.Secret(this, 'UpstreamApiKey', {
          description:
            'Upstream LLM provider API key (OPENAI_API_KEY). Holds a random placeholder: ' +
            'put the real key with `aws secretsmanager put-secret-value`.',
          generateSecretString: { excludePunctuation: true, passwordLength: 32 },
          removalPolicy,
        });
        acknowledgeNoRotation(created, "the provider's key, issued by the provider; rotate it there");
        this.placeholderProviderKey = created;
        keys[variable] = created;
      } else {
        throw new Error(`AppSecrets: no secret for provider key ${variable} (extraProviderKeySecrets)`);
      }
    }
    this.providerKeys = keys;
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
