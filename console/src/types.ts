/** The shapes of the admin API answers the console reads. */

export interface Limits {
  rpm?: number;
  tpm?: number;
  daily_tokens?: number;
  monthly_budget_usd?: number;
}

export interface ModelInfo {
  id: string;
  /** What the model serves: `chat`, `embeddings`. */
  endpoints: string[];
  context_window: number;
  pricing: { input_per_1m: number; output_per_1m: number; cached_input_per_1m: number };
  simulated: boolean;
}

export interface Catalogue {
  default_tier: string;
  tiers: Record<string, { limits: Limits; models: string[]; max_tokens_cap: number | null }>;
  models: ModelInfo[];
  playground_owner: string;
}

export interface KeyView {
  id: string;
  owner: string;
  tier: string;
  limits: Limits;
  models: string[];
  prefix: string;
  created: string;
  revoked: boolean;
  revoked_at?: string;
  expires_at?: string;
}

export interface CreatedKey extends KeyView {
  key: string;
}

export interface Standing {
  key_id: string;
  owner: string;
  tier: string;
  limits: Limits;
  requests_this_minute: number | null;
  tokens_this_minute: number | null;
  tokens_today: number;
  spend_this_month_usd: number;
  at: string;
}

export interface SeriesPoint {
  period: string;
  owner?: string;
  key_id?: string;
  model?: string;
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  cost_usd: number;
  cached_requests: number;
}

export interface Percentiles {
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

export interface Totals {
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cost_usd: number;
  cached_requests: number;
  cache_hit_rate: number | null;
  latency_ms: Percentiles;
  ttft_ms: Percentiles;
}

export interface Overview {
  at: string;
  hour: Totals & { since: string };
  day: Totals & { since: string };
  series: SeriesPoint[];
}

export interface Series {
  granularity: 'hour' | 'day';
  start: string;
  end: string;
  data: SeriesPoint[];
}

export interface Ready {
  status: string;
  dependencies: Array<{ name: string; status: 'ok' | 'error'; latency_ms: number; error?: string }>;
  in_flight: number;
  queued: number;
}

export interface QueueStats {
  queue: {
    visible: number;
    in_flight: number;
    delayed: number;
    oldest_message_age_seconds: number | null;
    max_depth: number;
  };
  dlq: { visible: number; in_flight: number } | null;
  worker: { concurrency: number };
}

export interface FailedJob {
  id: string;
  owner: string;
  key_id: string;
  model: string;
  attempts: number;
  created: number;
  failed: number;
  error: { message: string; type: string; code: string | null; status: number } | null;
}

export interface List<T> {
  data: T[];
}
