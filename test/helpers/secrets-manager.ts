/**
 * A scripted Secrets Manager on a real node:http server, speaking the service's JSON protocol
 * (`POST /`, `X-Amz-Target: secretsmanager.GetSecretValue`, `application/x-amz-json-1.1`), so
 * the real `@aws-sdk/client-secrets-manager` reads from it through AWS_ENDPOINT_URL_SECRETS_MANAGER.
 * Only GetSecretValue is served; that is all the runtime calls.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ScriptedSecretsManager {
  /** e.g. `http://127.0.0.1:PORT` (the value for AWS_ENDPOINT_URL_SECRETS_MANAGER). */
  readonly url: string;
  /** Create or rotate a secret; returns its ARN. */
  put(name: string, value: string): string;
  /** ARN of a secret created with {@link put}. */
  arn(name: string): string;
  /** While true, every call answers 503 (an outage). */
  down: boolean;
  /** GetSecretValue calls received, by SecretId. */
  readonly reads: string[];
  close(): Promise<void>;
}

const ACCOUNT = '000000000000';

export async function startSecretsManager(region = 'us-east-1'): Promise<ScriptedSecretsManager> {
  const secrets = new Map<string, { value: string; version: number }>();
  const reads: string[] = [];
  const arnOf = (name: string) => `arn:aws:secretsmanager:${region}:${ACCOUNT}:secret:${name}-AbCdEf`;
  const byId = (id: string) => {
    for (const name of secrets.keys()) if (id === name || id === arnOf(name)) return name;
    return undefined;
  };
  let down = false;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        res.writeHead(status, {
          'content-type': 'application/x-amz-json-1.1',
          'content-length': Buffer.byteLength(text),
          'x-amzn-requestid': `req-${reads.length}`,
        });
        res.end(text);
      };
      if (down) return send(503, { __type: 'ServiceUnavailable', message: 'scripted outage' });
      if (req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue') {
        return send(400, { __type: 'InvalidRequestException', message: 'only GetSecretValue is scripted' });
      }
      let id = '';
      try {
        id = String((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { SecretId?: unknown }).SecretId);
      } catch {
        return send(400, { __type: 'InvalidRequestException', message: 'bad JSON' });
      }
      reads.push(id);
      const name = byId(id);
      const s = name === undefined ? undefined : secrets.get(name);
      if (name === undefined || !s) {
        return send(400, {
          __type: 'ResourceNotFoundException',
          message: "Secrets Manager can't find the specified secret.",
        });
      }
      send(200, {
        ARN: arnOf(name),
        Name: name,
        SecretString: s.value,
        VersionId: `v${s.version}`,
        VersionStages: ['AWSCURRENT'],
        CreatedDate: Date.now() / 1000,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    put(name, value) {
      const cur = secrets.get(name);
      secrets.set(name, { value, version: (cur?.version ?? 0) + 1 });
      return arnOf(name);
    },
    arn: arnOf,
    get down() {
      return down;
    },
    set down(v: boolean) {
      down = v;
    },
    reads,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
