import type { AsyncBenchResult } from '../async';
import type { LoadResult, Percentiles } from './load';
import type { ProfileSummary } from './profile';
import type { RoundTripCounts } from './redis-stats';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memGiB: number;
  node: string;
  redis: string;
  kernel: string;
  /** 1-minute load average just before the run: other work on the box shows here. */
  loadAvgAtStart: number;
  /** 1,000 sequential Redis PINGs over loopback from the load generator, ms. */
  redisPing?: { p50: number; p99: number };
}

export interface RedisScenario extends RoundTripCounts {
  requests: number;
  statusCodes: Record<string, number>;
}

export interface StreamResult {
  streams: number;
  origins: number;
  tokens: number;
  intervalMs: number;
  rampMs: number;
  /** RSS right after start, before any request. */
  startRssKiB: number;
  idleRssKiB: number;
  openRssKiBMedian: number;
  openRssKiBMax: number;
  perStreamKiB: number;
  /** Streams open (first chunk in, not ended) while RSS was sampled: median. */
  heldOpen: number;
  /** Open file descriptors while held (client + upstream sockets). */
  openFds: number;
  gatewayCpuWhileHeld: number;
  opened: number;
  firstChunk: number;
  completed: number;
  failed: number;
  failures: Record<string, number>;
  firstErrors: string[];
  chunks: number;
  expectedChunks: number;
  ttft: Percentiles;
  afterRssKiB: number;
}

export interface SingleOriginResult {
  streams: number;
  tokens: number;
  intervalMs: number;
  rampMs: number;
  /** Streams whose first chunk took longer than `delayedAfterMs` (they waited for a connection). */
  delayed: number;
  delayedAfterMs: number;
  completed: number;
  failed: number;
  ttft: Percentiles;
}

export interface BenchResults {
  date: string;
  gitRevision: string;
  machine: MachineInfo;
  settings: Record<string, string | number>;
  throughput: {
    direct: LoadResult | null;
    portkey: LoadResult | null;
    tollgate: LoadResult | null;
    tollgateInfoLog: LoadResult | null;
  };
  latency500: {
    direct: LoadResult | null;
    tollgate: LoadResult | null;
    directAutocannon: LoadResult | null;
    tollgateAutocannon: LoadResult | null;
    /**
     * Every paced round (mock direct, then Tollgate); `direct`/`tollgate` above are the round
     * with the median added p99, so one noisy round on a shared box does not decide the verdict.
     */
    rounds?: Array<{ direct: LoadResult; tollgate: LoadResult }>;
  };
  /** The same pair at a low rate: per-request overhead without queueing. */
  latencyLow: { direct: LoadResult | null; tollgate: LoadResult | null };
  cache: {
    /** At the low rate and at the latency rate. */
    runLow: LoadResult | null;
    run: LoadResult | null;
    /** p50 of every low-rate round; `runLow` is the median one (idle wake-ups make them vary). */
    lowRoundsP50?: number[];
    /** Responses checked for `x-tollgate-cache: HIT` (all of both runs) and how many were. */
    sampleChecked: number;
    sampleHits: number;
    hitsCounted: number | null;
  };
  redis: { bypass: RedisScenario | null; missStore: RedisScenario | null; hit: RedisScenario | null };
  streams: StreamResult | null;
  singleOrigin: SingleOriginResult | null;
  profile: ProfileSummary | null;
  profilePath: string | null;
  async: { status: 'ok' | 'skipped' | 'failed'; note: string; data?: AsyncBenchResult; markdown?: string[] };
  problems: string[];
  wallSeconds: number;
}
