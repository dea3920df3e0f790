import type { Redis } from 'ioredis';
import type { Limits } from '../config/service-config';
import { METRICS } from '../contract';
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
  tpmRemaining: number;
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

/** The raw counters of one API key at a moment (absent counters read as 0). */
export interface CounterSnapshot {
  rpmPrev: number;
  rpmCur: number;
  tpmPrev: number;
  tpmCur: number;
  /** Tokens charged this UTC day. */
  day: number;
  /** Micro-USD charged this UTC month. */
  monthMicro: number;
}

/** Where the counters live: Redis (shared, exact across replicas) or this process. */
export interface LimiterStore {
  admit(a: AdmitArgs): Promise<AdmitOutcome>;
  reconcile(keyId: string, at: number, tokenDelta: number, costDeltaMicro: number): Promise<void>;
  /** Read one key's counters without changing them (the admin console's standing). */
  read(keyId: string, at: number): Promise<CounterSnapshot>;
}

const WINDOW_MS = 60_000;

/** Counter keys of one API key at a moment: rpm/tpm previous and current minute, day, month. */
function keysFor(keyId: string, at: number) {
  const w = Math.floor(at / WINDOW_MS);
  const day = new Date(at).toISOString().slice(0, 10);
  // The hash tag keeps one key's counters in one slot (cluster mode, ElastiCache Serverless).
  const tag = `{tg:${keyId}}`;
  return {
    rpmPrev: `${tag}:rpm:${w - 1}`,
    rpmCur: `${tag}:rpm:${w}`,
    tpmPrev: `${tag}:tpm:${w - 1}`,
    tpmCur: `${tag}:tpm:${w}`,
    day: `${tag}:day:${day}`,
    month: `${tag}:month:${day.slice(0, 7)}`,
  };
}

interface ScriptCommands {
  tgAdmit(...args: (string | number)[]): Promise<[string, number, number, number]>;
  tgReconcile(...args: (string | number)[]): Promise<unknown>;
}

/** Counters in Redis, one Lua round trip per admission. */
export class RedisLimiterStore implements LimiterStore {
  private readonly redis: Redis & ScriptCommands;
  constructor(redis: Redis) {
    redis.defineCommand('tgAdmit', { numberOfKeys: 6, lua: ADMISSION_LUA });
    redis.defineCommand('tgReconcile', { numberOfKeys: 3, lua: RECONCILE_LUA });
    this.redis = redis as Redis & ScriptCommands;
  }

  async admit(a: AdmitArgs): Promise<AdmitOutcome> {
    const k = keysFor(a.keyId, a.now);
    const r = await this.redis.tgAdmit(
      k.rpmPrev,
      k.rpmCur,
      k.tpmPrev,
      k.tpmCur,
      k.day,
      k.month,
      a.now % WINDOW_MS,
      a.rpm,
      a.tpm,
      a.daily,
      a.monthlyMicro,
      a.tokens,
      a.costMicro,
      a.msToDayEnd,
      a.msToMonthEnd,
    );
    return { denied: r[0] as AdmitOutcome['denied'], waitMs: r[1], rpmRemaining: r[2], tpmRemaining: r[3] };
  }

  async reconcile(keyId: string, at: number, tokenDelta: number, costDeltaMicro: number): Promise<void> {
    const k = keysFor(keyId, at);
    await this.redis.tgReconcile(k.tpmCur, k.day, k.month, tokenDelta, costDeltaMicro);
  }

  async read(keyId: string, at: number): Promise<CounterSnapshot> {
    const k = keysFor(keyId, at);
    // One MGET: the hash tag keeps the six keys in one cluster slot.
    const v = await this.redis.mget(k.rpmPrev, k.rpmCur, k.tpmPrev, k.tpmCur, k.day, k.month);
    const n = (i: number) => Number(v[i] ?? 0) || 0;
    return { rpmPrev: n(0), rpmCur: n(1), tpmPrev: n(2), tpmCur: n(3), day: n(4), monthMicro: n(5) };
  }
}

/**
 * The same algorithm in this process, for running without any Redis (one process only:
 * two replicas would each allow the full limit).
 */
export class MemoryLimiterStore implements LimiterStore {
  private readonly values = new Map<string, { v: number; exp: number }>();

  private get(k: string, now: number): number {
    const e = this.values.get(k);
    if (!e) return 0;
    if (e.exp <= now) {
      this.values.delete(k);
      return 0;
    }
    return e.v;
  }

  private add(k: string, by: number, ttlMs: number, now: number): void {
    this.values.set(k, { v: this.get(k, now) + by, exp: now + ttlMs });
    if (this.values.size > 100_000) {
      for (const [key, e] of this.values) if (e.exp <= now) this.values.delete(key);
    }
  }

  async admit(a: AdmitArgs): Promise<AdmitOutcome> {
    const k = keysFor(a.keyId, a.now);
    const elapsed = a.now % WINDOW_MS;
    const frac = elapsed / WINDOW_MS;
    const check = (prevKey: string, curKey: string, limit: number, n: number) => {
      if (limit <= 0) return { ok: true, wait: 0, rem: -1 };
      const prev = this.get(prevKey, a.now);
      const cur = this.get(curKey, a.now);
      const used = Math.ceil(prev * (1 - frac)) + cur;
      if (used + n <= limit) return { ok: true, wait: 0, rem: Math.floor(limit - used - n) };
      let wait: number;
      if (cur + n > limit) {
        const f = cur > 0 ? Math.max(0, 1 - (limit - n) / cur) : 1;
        wait = WINDOW_MS - elapsed + f * WINDOW_MS;
      } else {
        wait = (1 - (limit - cur - n) / prev - frac) * WINDOW_MS;
      }
      return { ok: false, wait, rem: Math.max(0, Math.floor(limit - used)) };
    };
    const r = check(k.rpmPrev, k.rpmCur, a.rpm, 1);
    const t = check(k.tpmPrev, k.tpmCur, a.tpm, a.tokens);
    const usedDay = this.get(k.day, a.now);
    const usedMonth = this.get(k.month, a.now);
    let denied: AdmitOutcome['denied'] = '';
    let wait = 0;
    if (!r.ok) [denied, wait] = ['rpm', r.wait];
    else if (!t.ok) [denied, wait] = ['tpm', t.wait];
    else if (a.daily > 0 && usedDay + a.tokens > a.daily) [denied, wait] = ['daily', a.msToDayEnd];
    else if (a.monthlyMicro > 0 && usedMonth + a.costMicro > a.monthlyMicro)
      [denied, wait] = ['monthly', a.msToMonthEnd];
    if (denied === '') {
      const ttl = 2 * WINDOW_MS - elapsed + 1000;
      if (a.rpm > 0) this.add(k.rpmCur, 1, ttl, a.now);
      if (a.tpm > 0 && a.tokens > 0) this.add(k.tpmCur, a.tokens, ttl, a.now);
      if (a.tokens > 0) this.add(k.day, a.tokens, a.msToDayEnd + 3_600_000, a.now);
      if (a.costMicro > 0) this.add(k.month, a.costMicro, a.msToMonthEnd + 86_400_000, a.now);
    }
    return { denied, waitMs: Math.ceil(wait), rpmRemaining: r.rem, tpmRemaining: t.rem };
  }

  async reconcile(keyId: string, at: number, tokenDelta: number, costDeltaMicro: number): Promise<void> {
    const k = keysFor(keyId, at);
    const bump = (key: string, d: number) => {
      const e = this.values.get(key);
      if (e && d !== 0) e.v += d;
    };
    bump(k.tpmCur, tokenDelta);
    bump(k.day, tokenDelta);
    bump(k.month, costDeltaMicro);
  }

  async read(keyId: string, at: number): Promise<CounterSnapshot> {
    const k = keysFor(keyId, at);
    return {
      rpmPrev: this.get(k.rpmPrev, at),
      rpmCur: this.get(k.rpmCur, at),
      tpmPrev: this.get(k.tpmPrev, at),
      tpmCur: this.get(k.tpmCur, at),
      day: this.get(k.day, at),
      monthMicro: this.get(k.month, at),
    };
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

/**
 * A key's live standing against its limits, counted the way admission counts: the per-minute
 * figures are the sliding-window estimate admission compares with the limit.
 */
export interface Standing {
  requestsThisMinute: number;
  tokensThisMinute: number;
  tokensToday: number;
  spendThisMonthUsd: number;
  /** When the figures were read (epoch ms). */
  at: number;
}

/** Sliding-window use at `at`, exactly as the admission script and the in-process store compute it. */
function slidingUse(prev: number, cur: number, at: number): number {
  const frac = (at % WINDOW_MS) / WINDOW_MS;
  return Math.ceil(prev * (1 - frac)) + cur;
}

export interface LimiterOptions {
  store: LimiterStore;
  failureMode: 'open' | 'closed';
  telemetry: Telemetry;
  /** Reconciliations are merged per key and window and written this often. @default 20 */
  reconcileIntervalMs?: number;
}

interface PendingReconcile {
  keyId: string;
  at: number;
  tokens: number;
  costMicro: number;
}

/**
 * Per-key admission: requests and tokens per minute, tokens per day, USD per month. Tokens
 * and cost are reserved up front (prompt + max output) and reconciled with real usage.
 */
export class Limiter {
  private lastWarn = 0;
  private pending = new Map<string, PendingReconcile>();
  private flushing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: LimiterOptions) {
    this.timer = setInterval(() => void this.flush(), opts.reconcileIntervalMs ?? 20);
    this.timer.unref();
  }

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
    // The sliding window is fully clear one window after the current one ends.
    const resetMs = out.denied ? out.waitMs : WINDOW_MS - (now % WINDOW_MS);
    if (rpm > 0) {
      headers['x-ratelimit-limit-requests'] = String(rpm);
      headers['x-ratelimit-remaining-requests'] = String(Math.max(0, out.rpmRemaining));
      headers['x-ratelimit-reset-requests'] = formatDuration(resetMs);
    }
    if (tpm > 0) {
      headers['x-ratelimit-limit-tokens'] = String(tpm);
      headers['x-ratelimit-remaining-tokens'] = String(Math.max(0, out.tpmRemaining));
      headers['x-ratelimit-reset-tokens'] = formatDuration(resetMs);
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

  /**
   * Charge the real usage: give back what was reserved but not used. Deltas are merged per key
   * and minute window and written every few milliseconds, so a busy key costs one Redis call
   * per interval instead of one per request. Never throws.
   */
  reconcile(r: Reservation | null, actualTokens: number, actualCostUsd: number): void {
    if (!r) return;
    const tokenDelta = actualTokens - r.tokens;
    const costDelta = Math.ceil(actualCostUsd * 1e6) - r.costMicroUsd;
    if (tokenDelta === 0 && costDelta === 0) return;
    const window = Math.floor(r.at / WINDOW_MS);
    const k = `${r.keyId}\0${window}\0${Math.floor(r.at / 86_400_000)}`;
    const p = this.pending.get(k);
    if (p) {
      p.tokens += tokenDelta;
      p.costMicro += costDelta;
    } else {
      this.pending.set(k, { keyId: r.keyId, at: r.at, tokens: tokenDelta, costMicro: costDelta });
    }
  }

  /** Write the merged reconciliations now (timer, shutdown, end of a Lambda invocation). */
  flush(): Promise<void> {
    if (this.pending.size === 0) return this.flushing ?? Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    const run = Promise.all(
      [...batch.values()].map(async (p) => {
        if (p.tokens === 0 && p.costMicro === 0) return;
        try {
          await this.opts.store.reconcile(p.keyId, p.at, p.tokens, p.costMicro);
        } catch (err) {
          this.warn(err);
        }
      }),
    ).then(() => undefined);
    this.flushing = run;
    return run;
  }

  /**
   * A key's current standing. Reconciliations still waiting for the timer are written first, so
   * a finished request's real usage (not its reservation) is what the figures show. Throws when
   * the store is unreachable (the caller reports it; admission's fail-open policy is not for reads).
   */
  async standing(keyId: string, at = Date.now()): Promise<Standing> {
    await this.flush();
    const c = await this.opts.store.read(keyId, at);
    return {
      requestsThisMinute: slidingUse(c.rpmPrev, c.rpmCur, at),
      tokensThisMinute: slidingUse(c.tpmPrev, c.tpmCur, at),
      tokensToday: c.day,
      spendThisMonthUsd: c.monthMicro / 1e6,
      at,
    };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
