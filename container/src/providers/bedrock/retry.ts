import { GatewayTimeoutError } from '../../errors';
import type { ProviderCallOptions } from '../types';
import { type BedrockTarget, mapBedrockError, shouldRetry } from './errors';

/**
 * The SDK's own retries are off (`maxAttempts: 1`): they would not share the call's deadline,
 * could not be told from a disconnect, and would ignore the catalogue's `maxRetries`. Retries
 * here back off exponentially with jitter, all attempts within one deadline.
 */
const BASE_DELAY_MS = 200;
const MAX_DELAY_MS = 4000;

/** The caller's signal plus the call's deadline (shared by every attempt). */
export interface Deadline {
  readonly signal: AbortSignal;
  /** The deadline fired (not the caller). */
  expired(): boolean;
  /** Stop the timer, keep following the caller (a stream past its first chunk). */
  stopTimer(): void;
  /** Stop following the caller too. */
  clear(): void;
}

export function deadline(parent: AbortSignal, ms: number): Deadline {
  const ac = new AbortController();
  let fired = false;
  const onParent = () => ac.abort(parent.reason);
  if (parent.aborted) ac.abort(parent.reason);
  else parent.addEventListener('abort', onParent, { once: true });
  let timer: NodeJS.Timeout | undefined = setTimeout(() => {
    fired = true;
    ac.abort(new Error('upstream timeout'));
  }, ms);
  const stopTimer = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  return {
    signal: ac.signal,
    expired: () => fired && !parent.aborted,
    stopTimer,
    clear: () => {
      stopTimer();
      parent.removeEventListener('abort', onParent);
    },
  };
}

/** An AbortController that follows `parent` (one per attempt, so a failed one can be cut). */
export function child(parent: AbortSignal): AbortController {
  const ac = new AbortController();
  if (parent.aborted) ac.abort(parent.reason);
  else parent.addEventListener('abort', () => ac.abort(parent.reason), { once: true, signal: ac.signal });
  return ac;
}

function backoff(attempt: number): number {
  const base = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  return base * (0.75 + Math.random() * 0.25);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Run `attempt` until it succeeds, fails with something not worth retrying, or `maxRetries`
 * retries are spent; failures come back mapped (ApiError / ClientAbortError). Each attempt
 * gets its own controller, aborted when it fails, and returned with the result when it
 * succeeds (a stream keeps using it).
 */
export async function withRetries<T>(
  opts: ProviderCallOptions,
  d: Deadline,
  to: BedrockTarget,
  attempt: (ac: AbortController) => Promise<T>,
): Promise<{ result: T; ac: AbortController }> {
  for (let n = 0; ; n++) {
    const ac = child(d.signal);
    try {
      return { result: await attempt(ac), ac };
    } catch (err) {
      ac.abort();
      if (d.expired())
        throw new GatewayTimeoutError(`The upstream model did not answer within ${opts.timeoutMs} ms.`);
      if (opts.signal.aborted || n >= opts.maxRetries || !shouldRetry(err))
        throw mapBedrockError(err, to, opts.signal);
      await sleep(backoff(n), d.signal);
      if (d.expired())
        throw new GatewayTimeoutError(`The upstream model did not answer within ${opts.timeoutMs} ms.`);
    }
  }
}
