/**
 * `npm run smoke`: check a running Tollgate end to end from the outside, the way a client sees
 * it, and print a pass/fail table. Exits 0 only when every check passed.
 *
 *   npm run smoke -- --url https://api.example.com --admin-key sk-tg-admin-...
 *   npm run smoke -- --stack Tollgate-dev           (URL and admin key from the stack)
 *
 * What it does, in order: GET /health; GET /ready (every dependency); a temporary key (rpm 3);
 * one completion; one stream with usage; one async job (submitted, then polled to completion);
 * a 429 at the key's limit; the key's usage visible in GET /admin/usage; the key revoked (and
 * refused afterwards). The temporary key is revoked whatever failed before. It costs three small
 * completions (max_tokens 16) on the model it tests.
 */
import { parseArgs } from 'node:util';

const USAGE = `Usage: npm run smoke -- --url <base URL> --admin-key <key> [options]
       npm run smoke -- --stack <stack name> [options]

Checks a deployed (or local) Tollgate end to end and prints a pass/fail table:
/health, /ready, a temporary key, one completion, one stream with usage, one async job
to completion, a 429 at the key's limit, the usage row, and revoking the key.
Exits 0 only when every check passed.

Options:
  --url <url>          base URL of the API, without /v1 (the stack's ApiUrl output)
  --admin-key <key>    the admin API key (default: $TOLLGATE_ADMIN_API_KEY)
  --stack <name>       read ApiUrl and the admin key (AdminKeySecretName) from this
                       CloudFormation stack, with your AWS credentials
  --region <region>    region of --stack (default: your AWS configuration)
  --model <id>         model to test (default: the first chat model GET /v1/models lists)
  --timeout <seconds>  how long to wait for the async job and the usage row (default 120)
  --help               print this and exit
`;

interface Options {
  url: string;
  adminKey: string;
  model?: string;
  timeoutMs: number;
}

interface Row {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

class CheckFailed extends Error {}

function fail(message: string): never {
  throw new CheckFailed(message);
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json(): Record<string, unknown>;
}

async function call(
  base: string,
  method: string,
  path: string,
  o: { key?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (o.key) headers.authorization = `Bearer ${o.key}`;
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(o.body !== undefined && { body: JSON.stringify(o.body) }),
    signal: AbortSignal.timeout(o.timeoutMs ?? 60_000),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    json: () => {
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch {
        return fail(`${method} ${path}: ${res.status} with a body that is not JSON: ${text.slice(0, 120)}`);
      }
    },
  };
}

/** `${status} ${error message}` of an unexpected answer, short. */
function said(a: Answer): string {
  let message = a.text.slice(0, 160);
  try {
    const e = (JSON.parse(a.text) as { error?: { message?: string; code?: string } }).error;
    if (e?.message) message = `${e.code ? `${e.code}: ` : ''}${e.message}`;
  } catch {
    // not JSON: the raw text
  }
  return `${a.status} ${message}`.trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The checks, in order; each may use what an earlier one found. */
export async function runSmoke(o: Options): Promise<Row[]> {
  const base = o.url.replace(/\/+$/, '');
  const rows: Row[] = [];
  const state: { key?: string; keyId?: string; owner?: string; model?: string } = {};
  const check = async (name: string, needs: Array<keyof typeof state>, fn: () => Promise<string>) => {
    const t0 = performance.now();
    const missing = needs.filter((n) => state[n] === undefined);
    let row: Row;
    if (missing.length > 0) {
      row = {
        name,
        ok: false,
        ms: 0,
        detail: `not run: needs the ${missing.join(' and ')} an earlier check did not get`,
      };
    } else {
      try {
        row = { name, ok: true, ms: 0, detail: await fn() };
      } catch (err) {
        const message =
          err instanceof CheckFailed ? err.message : `${(err as Error).name}: ${(err as Error).message}`;
        row = { name, ok: false, ms: 0, detail: message };
      }
    }
    row.ms = Math.round(performance.now() - t0);
    rows.push(row);
  };
  const chatBody = (extra: Record<string, unknown> = {}) => ({
    model: state.model,
    messages: [{ role: 'user', content: 'Reply with one word: pong' }],
    max_tokens: 16,
    ...extra,
  });

  await check('health', [], async () => {
    const a = await call(base, 'GET', '/health');
    if (a.status !== 200 || a.json().status !== 'ok') fail(`GET /health: ${said(a)}`);
    return 'GET /health 200';
  });

  await check('ready', [], async () => {
    const a = await call(base, 'GET', '/ready');
    const deps = (a.json().dependencies ?? []) as Array<{ name: string; status: string; error?: string }>;
    const bad = deps.filter((d) => d.status !== 'ok');
    if (a.status !== 200 || bad.length > 0) {
      fail(
        `GET /ready ${a.status}: ${bad.map((d) => `${d.name}: ${d.error ?? d.status}`).join('; ') || said(a)}`,
      );
    }
    return `all ${deps.length} ok (${deps.map((d) => d.name).join(', ')})`;
  });

  await check('temporary key', [], async () => {
    const owner = `smoke-${new Date()
      .toISOString()
      .replace(/[^0-9]/g, '')
      .slice(0, 14)}-${Math.random().toString(36).slice(2, 6)}`;
    const a = await call(base, 'POST', '/admin/keys', {
      key: o.adminKey,
      // Three requests a minute: the completion, the stream and the job; the fourth is the 429.
      body: { owner, limits: { rpm: 3 } },
    });
    if (a.status !== 201) fail(`POST /admin/keys: ${said(a)}`);
    const j = a.json();
    if (typeof j.key !== 'string' || typeof j.id !== 'string') fail('POST /admin/keys: no key in the answer');
    Object.assign(state, { key: j.key, keyId: j.id, owner });
    if (o.model) state.model = o.model;
    else {
      const m = await call(base, 'GET', '/v1/models', { key: state.key });
      const data = (m.json().data ?? []) as Array<{ id: string }>;
      const id = data[0]?.id;
      if (m.status !== 200 || !id) fail(`GET /v1/models: ${m.status === 200 ? 'no model listed' : said(m)}`);
      state.model = id;
    }
    return `${j.id} for owner ${owner}, rpm 3; model ${state.model}`;
  });

  await check('completion', ['key', 'model'], async () => {
    const a = await call(base, 'POST', '/v1/chat/completions', { key: state.key, body: chatBody() });
    if (a.status !== 200) fail(`POST /v1/chat/completions: ${said(a)}`);
    const j = a.json() as {
      choices?: Array<{ message?: { content?: unknown } }>;
      usage?: { total_tokens?: number };
    };
    const content = j.choices?.[0]?.message?.content;
    if (typeof content !== 'string') fail('the completion has no message content');
    if (!j.usage?.total_tokens) fail('the completion reports no usage');
    return `"${content.slice(0, 40).replace(/\s+/g, ' ')}" (${j.usage.total_tokens} tokens)`;
  });

  await check('stream with usage', ['key', 'model'], async () => {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${state.key}`, 'content-type': 'application/json' },
      body: JSON.stringify(chatBody({ stream: true, stream_options: { include_usage: true } })),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    if (res.status !== 200) fail(`POST /v1/chat/completions (stream): ${res.status} ${text.slice(0, 160)}`);
    if (!res.headers.get('content-type')?.startsWith('text/event-stream'))
      fail(`the stream answered ${res.headers.get('content-type')}, not text/event-stream`);
    const events = text
      .split('\n\n')
      .map((e) => e.trim())
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    if (events.at(-1) !== '[DONE]') fail('the stream did not end with data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Record<string, unknown>);
    if (chunks.some((c) => 'error' in c))
      fail(`the stream carried an error: ${JSON.stringify(chunks.find((c) => 'error' in c))}`);
    const content = chunks.filter(
      (c) => (c.choices as Array<{ delta?: { content?: string } }> | undefined)?.[0]?.delta?.content,
    );
    const usage = chunks.find((c) => c.usage)?.usage as { total_tokens?: number } | undefined;
    if (content.length === 0) fail('the stream sent no content');
    if (!usage?.total_tokens) fail('the stream sent no usage chunk (stream_options.include_usage)');
    return `${chunks.length} chunks, usage ${usage.total_tokens} tokens, [DONE]`;
  });

  let jobId: string | undefined;
  await check('async job submitted', ['key', 'model'], async () => {
    const a = await call(base, 'POST', '/v1/chat/async', { key: state.key, body: chatBody() });
    if (a.status !== 202) fail(`POST /v1/chat/async: ${said(a)}`);
    jobId = String(a.json().id);
    return `202, ${jobId}`;
  });

  // Right after the job: the three admissions are in this minute's window.
  await check('429 at the limit', ['key', 'model'], async () => {
    const a = await call(base, 'POST', '/v1/chat/completions', { key: state.key, body: chatBody() });
    if (a.status !== 429) fail(`a fourth request within the minute answered ${said(a)}, not 429`);
    const retryAfter = a.headers.get('retry-after');
    if (!retryAfter) fail('the 429 has no Retry-After header');
    return `429 ${String((a.json().error as { code?: string } | undefined)?.code)}, retry-after ${retryAfter} s`;
  });

  await check('async job completed', ['key'], async () => {
    if (!jobId) fail('not run: the job was not submitted');
    const end = Date.now() + o.timeoutMs;
    for (;;) {
      const a = await call(base, 'GET', `/v1/chat/async/${jobId}`, { key: state.key });
      if (a.status !== 200) fail(`GET /v1/chat/async/${jobId}: ${said(a)}`);
      const j = a.json();
      if (j.status === 'completed')
        return `completed in ${Math.round((Date.now() - (end - o.timeoutMs)) / 1000)} s`;
      if (j.status === 'failed') fail(`the job failed: ${JSON.stringify(j.error)}`);
      if (Date.now() > end)
        fail(`still ${String(j.status)} after ${o.timeoutMs / 1000} s: is the worker running?`);
      await sleep(1000);
    }
  });

  await check('usage recorded', ['owner'], async () => {
    const end = Date.now() + o.timeoutMs;
    for (;;) {
      const a = await call(base, 'GET', `/admin/usage?owner=${encodeURIComponent(String(state.owner))}`, {
        key: o.adminKey,
      });
      if (a.status !== 200) fail(`GET /admin/usage: ${said(a)}`);
      const totals = a.json().totals as { requests?: number; total_tokens?: number } | undefined;
      // The completion, the stream and the job.
      if ((totals?.requests ?? 0) >= 3) return `${totals?.requests} requests, ${totals?.total_tokens} tokens`;
      if (Date.now() > end)
        fail(`${totals?.requests ?? 0} of 3 requests visible after ${o.timeoutMs / 1000} s`);
      await sleep(1000);
    }
  });

  await check('key revoked', ['keyId'], async () => revoke(base, o.adminKey, state));
  return rows;
}

async function revoke(
  base: string,
  adminKey: string,
  state: { key?: string; keyId?: string },
): Promise<string> {
  const a = await call(base, 'DELETE', `/admin/keys/${state.keyId}`, { key: adminKey });
  if (a.status !== 200) fail(`DELETE /admin/keys/${state.keyId}: ${said(a)}`);
  // Other replicas keep a looked-up key for about a second.
  const end = Date.now() + 10_000;
  for (;;) {
    const r = await call(base, 'GET', '/v1/models', { key: state.key });
    if (r.status === 401) return 'revoked; the key now gets 401';
    if (Date.now() > end) fail(`the revoked key still gets ${r.status} after 10 s`);
    await sleep(500);
  }
}

function table(rows: readonly Row[]): string {
  const w = Math.max(...rows.map((r) => r.name.length), 5);
  const lines = rows.map(
    (r) => `  ${r.name.padEnd(w)}  ${r.ok ? 'PASS' : 'FAIL'}  ${`${r.ms} ms`.padStart(8)}  ${r.detail}`,
  );
  return [`  ${'check'.padEnd(w)}  result  ${'time'.padStart(6)}  detail`, ...lines].join('\n');
}

/** URL and admin key from a deployed stack's outputs and secret. */
async function fromStack(
  stack: string,
  region: string | undefined,
): Promise<{ url: string; adminKey: string }> {
  const { CloudFormationClient, DescribeStacksCommand } = await import('@aws-sdk/client-cloudformation');
  const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const cfg = region ? { region } : {};
  const cfn = new CloudFormationClient(cfg);
  const sm = new SecretsManagerClient(cfg);
  try {
    const out = await cfn.send(new DescribeStacksCommand({ StackName: stack }));
    const outputs = Object.fromEntries(
      (out.Stacks?.[0]?.Outputs ?? []).map((x) => [x.OutputKey ?? '', x.OutputValue ?? '']),
    );
    const url = outputs.ApiUrl;
    const secret = outputs.AdminKeySecretName;
    if (!url || !secret) throw new Error(`stack ${stack} has no ApiUrl or AdminKeySecretName output`);
    const value = await sm.send(new GetSecretValueCommand({ SecretId: secret }));
    if (!value.SecretString) throw new Error(`secret ${secret} has no string value`);
    return { url, adminKey: value.SecretString };
  } finally {
    cfn.destroy();
    sm.destroy();
  }
}

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let url = v.url;
  let adminKey = v['admin-key'] ?? process.env.TOLLGATE_ADMIN_API_KEY;
  if (v.stack) {
    try {
      const s = await fromStack(v.stack, v.region);
      url ??= s.url;
      adminKey = v['admin-key'] ?? s.adminKey;
    } catch (err) {
      process.stderr.write(`smoke: cannot read stack ${v.stack}: ${(err as Error).message}\n`);
      return 2;
    }
  }
  if (!url || !adminKey) {
    process.stderr.write(`smoke: give --url and --admin-key, or --stack\n\n${USAGE}`);
    return 2;
  }
  const timeoutMs = Number(v.timeout ?? 120) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    process.stderr.write('smoke: --timeout must be a positive number of seconds\n');
    return 2;
  }
  process.stdout.write(`Tollgate smoke test against ${url}\n\n`);
  const rows = await runSmoke({ url, adminKey, timeoutMs, ...(v.model !== undefined && { model: v.model }) });
  const failed = rows.filter((r) => !r.ok);
  process.stdout.write(`${table(rows)}\n\n`);
  process.stdout.write(
    failed.length === 0
      ? `PASS: all ${rows.length} checks passed.\n`
      : `FAIL: ${failed.length} of ${rows.length} checks failed: ${failed.map((r) => r.name).join(', ')}.\n`,
  );
  return failed.length === 0 ? 0 : 1;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      'admin-key': { type: 'string' },
      stack: { type: 'string' },
      region: { type: 'string' },
      model: { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`smoke: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 2;
    },
  );
}
