/**
 * Fixed log-scale histograms of milliseconds, as sparse bucket counts. Counts add, so the hourly
 * usage aggregates keep them with DynamoDB `ADD` (exact and idempotent like every other total)
 * and any set of hours merges into one histogram whose percentiles are read off its buckets.
 *
 * Bucket 0 holds [0, 2^(1/4)) ms; bucket i >= 1 holds [2^(i/4), 2^((i+1)/4)) ms, so an estimate
 * is within ~9% of the true value; the last bucket holds everything from ~14.7 minutes up.
 */

/** Buckets per doubling: 4 gives a resolution of 2^(1/4) = ~1.19. */
const PER_DOUBLING = 4;
/** The last bucket (open-ended). */
export const LAST_BUCKET = 79;

/** Sparse bucket counts: bucket index -> count. */
export type Histogram = Map<number, number>;

/** The bucket a value in milliseconds falls into. */
export function bucketOf(ms: number): number {
  if (!Number.isFinite(ms) || ms < 1) return 0;
  return Math.min(LAST_BUCKET, Math.floor(Math.log2(ms) * PER_DOUBLING));
}

/** Lower bound of a bucket in ms (0 for the first). */
export function bucketLow(i: number): number {
  return i <= 0 ? 0 : 2 ** (i / PER_DOUBLING);
}

/** Count one value. */
export function observe(h: Histogram, ms: number): void {
  const b = bucketOf(ms);
  h.set(b, (h.get(b) ?? 0) + 1);
}

/** Add `from` into `into`. */
export function merge(into: Histogram, from: Histogram): void {
  for (const [b, n] of from) into.set(b, (into.get(b) ?? 0) + n);
}

/**
 * The value at quantile `q` (0..1): the geometric middle of the bucket holding that rank (for
 * the first bucket, its upper half), or null for an empty histogram.
 */
export function quantile(h: Histogram, q: number): number | null {
  let total = 0;
  for (const n of h.values()) total += n;
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const b of [...h.keys()].sort((x, y) => x - y)) {
    seen += h.get(b) ?? 0;
    if (seen >= rank) {
      if (b === 0) return 2 ** (0.5 / PER_DOUBLING) / 2;
      return 2 ** ((b + 0.5) / PER_DOUBLING);
    }
  }
  return null;
}
