import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SECRET_ARN_SUFFIX } from '../contract';

/**
 * Load `<VAR>_SECRET_ARN` secrets into `<VAR>` (Lambda has no secret injection; ECS does it
 * itself). A variable already set wins. Runs once at cold start, before config is read.
 */
export async function loadSecretEnv(
  env: NodeJS.ProcessEnv = process.env,
  client?: SecretsManagerClient,
): Promise<string[]> {
  const wanted = Object.keys(env).filter((k) => k.endsWith(SECRET_ARN_SUFFIX) && env[k]);
  const loaded: string[] = [];
  if (wanted.length === 0) return loaded;
  const sm = client ?? new SecretsManagerClient({});
  try {
    for (const arnVar of wanted) {
      const target = arnVar.slice(0, -SECRET_ARN_SUFFIX.length);
      if (env[target]) continue;
      const out = await sm.send(new GetSecretValueCommand({ SecretId: env[arnVar] }));
      if (out.SecretString === undefined) throw new Error(`${arnVar}: the secret has no string value`);
      env[target] = out.SecretString;
      loaded.push(target);
    }
  } finally {
    if (!client) sm.destroy();
  }
  return loaded;
}
