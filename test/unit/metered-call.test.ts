import { parseServiceConfig } from '../../container/src/config/service-config';
import { ApiError, ClientAbortError, ServiceUnavailableError } from '../../container/src/errors';
import type { Principal } from '../../container/src/keys/key-store';
import { Limiter, MemoryLimiterStore, type Reservation } from '../../container/src/limits/limiter';
import { type CallPlan, MeteredCall, type UsageSink } from '../../container/src/metering/metered-call';
import type { ModelConfig } from '../../container/src/providers/registry';
import { Telemetry } from '../../container/src/telemetry/telemetry';
import type { UsageRecord } from '../../container/src/usage/usage-recorder';

const telemetry = new Telemetry({ serviceName: 'test', namespace: 'Test' });
afterAll(() => telemetry.close());

function model(id: string, pricing: Record<string, number>): ModelConfig {
  return parseServiceConfig({ models: [{ id, provider: 'simulator', pricing }] }).models[0] as ModelConfig;
}

const principal: Principal = {
  keyId: 'key_1',
  owner: 'acme',
  tier: 'basic',
  limits: { rpm: 100, tpm: 100_000, daily_tokens: 1_000_000, monthly_budget_usd: 10 },
  models: ['*'],
  maxTokensCap: undefined,
};

/** A sink that keeps what it was given, and a limiter that records what it reconciled. */
function harness(plan: Partial<CallPlan> = {}) {
  const records: UsageRecord[] = [];
  const reconciled: Array<{ r: Reservation | null; tokens: number; cost: number }> = [];
  const limiter = new Limiter({ store: new MemoryLimiterStore(), failureMode: 'open', telemetry });
  const real = limiter.reconcile.bind(limiter);
  limiter.reconcile = (r, tokens, cost) => {
    reconciled.push({ r, tokens, cost });
    real(r, tokens, cost);
  };
  const sink: UsageSink = {
    commit(record, reconcile) {
      records.push(record);
      reconcile();
    },
  };
  const full: CallPlan = {
    endpoint: 'chat',
    model: model('m', { input: 3, output: 15, cachedInput: 0.3, cacheWrite: 3.75 }),
    stream: false,
    promptTokens: 100,
    reserveTokens: 1100,
    reserveCostUsd: 0.0153,
    ...plan,
  };
  const call = new MeteredCall({ limiter, sink, telemetry }, principal, full, {
    requestId: 'req_1',
    signal: new AbortController().signal,
    source: 'sync',
  });
  return { call, records, reconciled, limiter };
}

describe('the metered call', () => {
  it('records exactly one usage row and reconciles once, however often finish is called', async () => {
    const { call, records, reconciled } = harness();
    await call.admit();
    const first = call.finish({
      status: 200,
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
    const again = call.finish({ status: 500, errorCode: 'x' });
    call.fail(new Error('late'));
    expect(again).toBe(first);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      status: 200,
      promptTokens: 10,
      completionTokens: 5,
      endpoint: 'chat',
    });
    expect(reconciled).toHaveLength(1);
    expect(reconciled[0]?.tokens).toBe(15);
    expect(reconciled[0]?.r?.tokens).toBe(1100);
  });

  it('reads the summary without recording anything', () => {
    const { call, records } = harness();
    expect(call.summary).toBeNull();
    expect(records).toHaveLength(0);
  });

  it('prices cache reads, cache writes and the rest of the prompt at their own prices', () => {
    const { call } = harness();
    // prompt 1000 = 600 plain + 300 cache read + 100 cache write; 200 out
    const s = call.finish({
      status: 200,
      usage: {
        prompt_tokens: 1000,
        completion_tokens: 200,
        total_tokens: 1200,
        prompt_tokens_details: { cached_tokens: 300, cache_write_tokens: 100 } as never,
      },
    });
    const expected = (600 * 3 + 300 * 0.3 + 100 * 3.75 + 200 * 15) / 1e6;
    expect(s.costUsd).toBeCloseTo(expected, 12);
    expect(s).toMatchObject({ cachedTokens: 300, cacheWriteTokens: 100 });
  });

  it('records and prices the model that answered (a fallback), not the one asked for', () => {
    const { call, records } = harness();
    call.servedBy(model('backup', { input: 1, output: 1 }));
    const s = call.finish({
      status: 200,
      usage: { prompt_tokens: 1e6, completion_tokens: 0, total_tokens: 1e6 },
    });
    expect(s.costUsd).toBe(1);
    expect(records[0]?.model).toBe('backup');
  });

  it('counts the delivered text when a stream is cut short, and marks it estimated', () => {
    const { call, records } = harness({ stream: true });
    call.fail(new ClientAbortError(), 'Hello there, this was delivered');
    expect(records[0]).toMatchObject({
      status: 499,
      errorCode: 'client_closed',
      promptTokens: 100,
      estimated: true,
    });
    expect(records[0]?.completionTokens).toBeGreaterThan(3);
  });

  it('bills nothing for a call that failed before the model produced anything', () => {
    const { call, records } = harness();
    call.fail(new ServiceUnavailableError('busy', { code: 'server_busy' }));
    expect(records[0]).toMatchObject({ status: 503, promptTokens: 0, completionTokens: 0, costUsd: 0 });
  });

  it('gives a cache hit its whole reservation back and costs nothing', async () => {
    const { call, reconciled } = harness();
    await call.admit();
    const s = call.finish({
      status: 200,
      cached: true,
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
    expect(s.costUsd).toBe(0);
    expect(reconciled[0]?.tokens).toBe(0);
  });

  it('hands its reservation off without recording (the async producer), or gives it back whole', async () => {
    const a = harness();
    await a.call.admit();
    const r = a.call.handOff();
    expect(r?.tokens).toBe(1100);
    a.call.finish({ status: 200 });
    expect(a.records).toHaveLength(0);
    expect(a.reconciled).toHaveLength(0);

    const b = harness();
    await b.call.admit();
    b.call.abandon();
    b.call.abandon();
    expect(b.records).toHaveLength(0);
    expect(b.reconciled).toEqual([expect.objectContaining({ tokens: 0, cost: 0 })]);
  });

  it('answers a refused admission with the limiter error and records nothing', async () => {
    const { call, records } = harness({ reserveTokens: 200_000 });
    await expect(call.admit()).rejects.toBeInstanceOf(ApiError);
    expect(records).toHaveLength(0);
  });
});
