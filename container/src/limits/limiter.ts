import type { Redis } from 'ioredis';
import { METRICS } from '../config/contract';
import type { Limits } from '../config/service-config';
import { RateLimitError, ServiceUnavailableError } from '../errors';
import type { Telemetry } from '../telemetry/telemetry';
import { ADMISSION_LUA, RECONCILE_LUA } from './scripts';

/** What admission reserved; handed back to `reconcile` with the real usage. */
export interface Reservation {
  keyId: string;
  tokens: number;
  costMicroUsd: number;
  tpm: number;
  at: number;
}

/** The `x-ratelimit-*` headers (OpenAI's names) for one response. */
export type RateLimitHeaders = Record<string, string>;

export interface AdmissionResult {
  reservation: Reservation | null;
  headers: RateLimitHeaders;
}

/** Raw admission answer, from Redis or the in-process store. */
export interface AdmitOutcome {
  denied: '' | 'rpm' | 'tpm' | 'daily' | 'monthly';
  waitMs: number;
  rpmRemaining: number;
  rpmResetMs: number;
  tpmRemaining: number;
  tpmResetMs: number;
}

export interface AdmitArgs {
  keyId: string;
  now: number;
  rpm: number;
  tpm: number;
  daily: number;
  monthlyMicro: number;
  tokens: number;
  costMicro: number;
  msToDayEnd: number;
  msToMonthEnd: number;
}

/** Where the counters live: Redis (shared, exact across replicas) or this process. */
export interface LimiterStore {
  admit(a: AdmitArgs): Promise<AdmitOutcome>;
  reconcile(
    keyId: string,
    now: number,
    tpm: number,
    tokenDelta: number,
    costDeltaMicro: number,
    at: number,
  ): Promise<void>;
}

function keysFor(keyId: string, at: number): [string, string, string, string] {
  const d = new Date(at);
  const day = d.toISOString().slice(0, 10);
  const month = day.slice(0, 7);
  // Hash tag keeps one key's counters in one slot (cluster mode / ElastiCache Serverless).
  const tag = `{tg:${keyId}}`;
  return [`${tag}:rpm`, `${tag}:tpm`, `${tag}:day:${day}`, `${tag}:month:${month}`];
}

/** Counters in Redis, one Lua round trip per admission. */
export class RedisLimiterStore implements LimiterStore {
  constructor(private readonly redis: Redis) {
    redis.defineCommand('tgAdmit', { numberOfKeys: 4, lua: ADMISSION_LUA });
    redis.defineCommand('tgReconcile', { numberOfKeys: 3, lua: RECONCILE_LUA });
  }

  async admit(a: AdmitArgs): Promise<AdmitOutcome> {
    const [k1, k2, k3, k4] = keysFor(a.keyId, a.now);
    const r = (await (this.redis as unknown as ScriptCommands).tgAdmit(
      k1,
      k2,
      k3,
      k4,
      a.now,
      a.rpm,
      a.tpm,
      a.daily,
      a.monthlyMicro,
      a.tokens,
      a.costMicro,
      a.msToDayEnd,
      a.msToMonthEnd,
    )) as [string, number, number, number, number, number];
    return {
      denied: r[0] as AdmitOutcome['denied'],
      waitMs: r[1],
      rpmRemaining: r[2],
      rpmResetMs: r[3],
      tpmRemaining: r[4],
      tpmResetMs: r[5],
    };
  }

  async reconcile(
    keyId: string,
    now: number,
    tpm: number,
    tokenDelta: number,
    costDeltaMicro: number,
    at: number,
  ): Promise<void> {
    const [, k2, k3, k4] = keysFor(keyId, at);
    await (this.redis as unknown as ScriptCommands).tgReconcile(
      k2,
      k3,
      k4,
      now,
      tpm,
      tokenDelta,
      costDeltaMicro,
    );
  }
}

interface ScriptCommands {
  tgAdmit(...args: (string | number)[]): Promise<unknown>;
  tgReconcile(...args: (string | number)[]): Promise<unknown>;
}

/**
 * The same algorithm in this process, for running without any Redis (one process only:
 * two replicas would each allow the full limit).
 */
export class MemoryLimiterStore implements LimiterStore {
  private readonly values = new Map<string, { v: number; exp: number }>();

  private get(k: string, now: number): number | undefined {
    const e = this.values.get(k);
    if (!e) return undefined;
    if (e.exp <= now) {
      this.values.delete(k);
      return undefined;
    }
    return e.v;
  }

  private set(k: string, v: number, ttlMs: number, now: number): void {
    this.values.set(k, { v, exp: now + ttlMs });
    if (this.values.size > 100_000) {
      for (const [key, e] of this.values) if (e.exp <= now) this.values.delete(key);
    }
  }

  async admit(a: AdmitArgs): Promise<AdmitOutcome> {
    const [k1, k2, k3, k4] = keysFor(a.keyId, a.now);
    const period = 60_000;
    const gcra = (key: string, limit: number, n: number) => {
      if (limit <= 0) return { ok: true, wait: 0, rem: -1, reset: 0, tat: 0 };
      const t = period / limit;
      const tat = Math.max(this.get(key, a.now) ?? a.now, a.now);
      const newTat = tat + n * t;
      const allowAt = newTat - period;
      if (a.now < allowAt)
        return {
          ok: false,
          wait: allowAt - a.now,
          rem: Math.floor((period - (tat - a.now)) / t),
          reset: tat - a.now,
          tat: 0,
        };
      return {
        ok: true,
        wait: 0,
        rem: Math.floor((period - (newTat - a.now)) / t),
        reset: newTat - a.now,
        tat: newTat,
      };
    };
    const r = gcra(k1, a.rpm, 1);
    const t = gcra(k2, a.tpm, a.tokens);
    const usedDay = this.get(k3, a.now) ?? 0;
    const usedMonth = this.get(k4, a.now) ?? 0;
    let denied: AdmitOutcome['denied'] = '';
    let wait = 0;
    if (!r.ok) [denied, wait] = ['rpm', r.wait];
    else if (!t.ok) [denied, wait] = ['tpm', t.wait];
    else if (a.daily > 0 && usedDay + a.tokens > a.daily) [denied, wait] = ['daily', a.msToDayEnd];
    else if (a.monthlyMicro > 0 && usedMonth + a.costMicro > a.monthlyMicro)
      [denied, wait] = ['monthly', a.msToMonthEnd];
    if (denied === '') {
      if (a.rpm > 0) this.set(k1, r.tat, r.tat - a.now + 1000, a.now);
      if (a.tpm > 0 && a.tokens > 0) this.set(k2, t.tat, t.tat - a.now + 1000, a.now);
      if (a.tokens > 0) this.set(k3, usedDay + a.tokens, a.msToDayEnd + 3_600_000, a.now);
      if (a.costMicro > 0) this.set(k4, usedMonth + a.costMicro, a.msToMonthEnd + 86_400_000, a.now);
    }
    return {
      denied,
      waitMs: Math.ceil(wait),
      rpmRemaining: r.rem,
      rpmResetMs: Math.ceil(r.reset),
      tpmRemaining: t.rem,
      tpmResetMs: Math.ceil(t.reset),
    };
  }

  async reconcile(
    keyId: string,
    now: number,
    tpm: number,
    tokenDelta: number,
    costDeltaMicro: number,
    at: number,
  ): Promise<void> {
    const [, k2, k3, k4] = keysFor(keyId, at);
    if (tpm > 0 && tokenDelta !== 0) {
      const tat = this.get(k2, now);
      if (tat !== undefined) {
        const newTat = tat + tokenDelta * (60_000 / tpm);
        if (newTat > now) this.set(k2, newTat, newTat - now + 1000, now);
        else this.values.delete(k2);
      }
    }
    const bump = (k: string, d: number) => {
      const e = this.values.get(k);
      if (e && d !== 0) e.v += d;
    };
    bump(k3, tokenDelta);
    bump(k4, costDeltaMicro);
  }
}

/** OpenAI's duration format for reset headers: `20ms`, `1.5s`, `6m0s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Math.round(s * 10) / 10}s`;
  const m = Math.floor(s / 60);
  return `${m}m${Math.round(s - m * 60)}s`;
}

function msToNextUtcDay(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) - now;
}

function msToNextUtcMonth(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - now;
}

export interface LimiterOptions {
  store: LimiterStore;
  failureMode: 'open' | 'closed';
  telemetry: Telemetry;
}

/**
 * Per-key admission: requests and tokens per minute, tokens per day, USD per month. Tokens
 * and cost are reserved up front (prompt + max output) and reconciled with real usage.
 */
export class Limiter {
  private lastWarn = 0;
  constructor(private readonly opts: LimiterOptions) {}

  async admit(keyId: string, limits: Limits, tokens: number, costUsd: number): Promise<AdmissionResult> {
    const rpm = limits.rpm ?? 0;
    const tpm = limits.tpm ?? 0;
    if (tpm > 0 && tokens > tpm) {
      throw new RateLimitError(
        `Request too large: it needs up to ${tokens} tokens (prompt + max_tokens) but the limit is ${tpm} tokens per minute. Lower max_tokens or shorten the prompt.`,
        { code: 'rate_limit_exceeded', param: 'max_tokens' },
      );
    }
    const now = Date.now();
    const costMicro = Math.ceil(costUsd * 1e6);
    let out: AdmitOutcome;
    try {
      out = await this.opts.store.admit({
        keyId,
        now,
        rpm,
        tpm,
        daily: limits.daily_tokens ?? 0,
        monthlyMicro: Math.floor((limits.monthly_budget_usd ?? 0) * 1e6),
        tokens,
        costMicro,
        msToDayEnd: msToNextUtcDay(now),
        msToMonthEnd: msToNextUtcMonth(now),
      });
    } catch (err) {
      return this.degraded(err);
    }
    const headers: RateLimitHeaders = {};
    if (rpm > 0) {
      headers['x-ratelimit-limit-requests'] = String(rpm);
      headers['x-ratelimit-remaining-requests'] = String(Math.max(0, out.rpmRemaining));
      headers['x-ratelimit-reset-requests'] = formatDuration(out.rpmResetMs);
    }
    if (tpm > 0) {
      headers['x-ratelimit-limit-tokens'] = String(tpm);
      headers['x-ratelimit-remaining-tokens'] = String(Math.max(0, out.tpmRemaining));
      headers['x-ratelimit-reset-tokens'] = formatDuration(out.tpmResetMs);
    }
    if (out.denied) {
      const retryAfter = Math.max(1, Math.ceil(out.waitMs / 1000));
      const h = { ...headers, 'retry-after': String(retryAfter) };
      const messages = {
        rpm: `Rate limit reached: ${rpm} requests per minute. Retry in ${formatDuration(out.waitMs)}.`,
        tpm: `Rate limit reached: ${tpm} tokens per minute. Retry in ${formatDuration(out.waitMs)}.`,
        daily: `Daily token quota of ${limits.daily_tokens} tokens exhausted; it resets at 00:00 UTC.`,
        monthly: `Monthly budget of $${limits.monthly_budget_usd} exhausted; it resets on the 1st (UTC).`,
      } as const;
      throw new RateLimitError(messages[out.denied], {
        code:
          out.denied === 'daily' || out.denied === 'monthly' ? 'insufficient_quota' : 'rate_limit_exceeded',
        headers: h,
      });
    }
    return { reservation: { keyId, tokens, costMicroUsd: costMicro, tpm, at: now }, headers };
  }

  private degraded(err: unknown): AdmissionResult {
    this.warn(err);
    if (this.opts.failureMode === 'closed') {
      throw new ServiceUnavailableError('Rate limiting is unavailable; retry shortly.', {
        code: 'limiter_unavailable',
        retryAfterSeconds: 2,
      });
    }
    this.opts.telemetry.increment(METRICS.limiterFailOpen);
    return { reservation: null, headers: {} };
  }

  /** At most one warning a minute, however many requests hit the outage. */
  private warn(err: unknown): void {
    const now = Date.now();
    if (now - this.lastWarn > 60_000) {
      this.lastWarn = now;
      this.opts.telemetry.logger.warn('rate limiter store unavailable', {
        failureMode: this.opts.failureMode,
        error: (err as Error).message,
      });
    }
  }

  /** Charge the real usage: give back what was reserved but not used. Never throws. */
  async reconcile(r: Reservation | null, actualTokens: number, actualCostUsd: number): Promise<void> {
    if (!r) return;
    const tokenDelta = actualTokens - r.tokens;
    const costDelta = Math.ceil(actualCostUsd * 1e6) - r.costMicroUsd;
    if (tokenDelta === 0 && costDelta === 0) return;
    try {
      await this.opts.store.reconcile(r.keyId, Date.now(), r.tpm, tokenDelta, costDelta, r.at);
    } catch (err) {
      this.warn(err);
    }
  }
}
