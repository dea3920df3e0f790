import { useMemo, useState } from 'preact/hooks';
import type { Ctx } from '../app';
import { Chart } from '../chart';
import { int, usd } from '../format';
import { usePoll } from '../hooks';
import type { KeyView, List, Series, SeriesPoint } from '../types';

type Granularity = 'hour' | 'day';
type GroupBy = 'owner' | 'key_id' | 'model';
type Metric = 'total_tokens' | 'requests' | 'cost_usd';

const METRICS: Array<{ value: Metric; label: string; format: (v: number) => string }> = [
  { value: 'total_tokens', label: 'Tokens', format: int },
  { value: 'requests', label: 'Requests', format: int },
  { value: 'cost_usd', label: 'Cost (USD)', format: usd },
];
const RANGES: Record<Granularity, Array<{ value: number; label: string }>> = {
  hour: [
    { value: 24, label: 'last 24 hours' },
    { value: 72, label: 'last 3 days' },
    { value: 168, label: 'last 7 days' },
  ],
  day: [
    { value: 7, label: 'last 7 days' },
    { value: 30, label: 'last 30 days' },
    { value: 90, label: 'last 90 days' },
  ],
};
const GROUPS: Array<{ value: GroupBy; label: string }> = [
  { value: 'owner', label: 'owner' },
  { value: 'key_id', label: 'key' },
  { value: 'model', label: 'model' },
];

const HOUR = 3_600_000;
const DAY = 86_400_000;

function periodMs(p: string): number {
  return Date.parse(p.length === 10 ? `${p}T00:00:00Z` : `${p}:00:00Z`);
}

function query(g: Granularity, span: number, groupBy: GroupBy, owner: string, keyId: string, model: string) {
  const now = Date.now();
  const step = g === 'hour' ? HOUR : DAY;
  const end = Math.floor(now / step) * step;
  const start = end - (span - 1) * step;
  const iso = (t: number) => new Date(t).toISOString().slice(0, g === 'hour' ? 13 : 10);
  const q = new URLSearchParams({ granularity: g, start: iso(start), end: iso(end), group_by: groupBy });
  if (owner) q.set('owner', owner);
  if (keyId) q.set('key_id', keyId);
  if (model) q.set('model', model);
  return { q, start, end, step };
}

export function UsagePage({ ctx }: { ctx: Ctx }) {
  const [granularity, setGranularity] = useState<Granularity>('hour');
  const [span, setSpan] = useState(24);
  const [groupBy, setGroupBy] = useState<GroupBy>('key_id');
  const [metric, setMetric] = useState<Metric>('total_tokens');
  const [owner, setOwner] = useState('');
  const [keyId, setKeyId] = useState('');
  const [model, setModel] = useState('');
  const [exportError, setExportError] = useState<string | null>(null);
  const keys = usePoll((signal) => ctx.admin<List<KeyView>>('/admin/keys', { signal }), 60_000, [ctx]);
  const series = usePoll(
    (signal) =>
      ctx.admin<Series>(`/admin/usage/series?${query(granularity, span, groupBy, owner, keyId, model).q}`, {
        signal,
      }),
    10_000,
    [ctx, granularity, span, groupBy, owner, keyId, model],
  );
  const owners = useMemo(() => [...new Set((keys.data?.data ?? []).map((k) => k.owner))].sort(), [keys.data]);
  const keyLabel = useMemo(() => {
    const m = new Map((keys.data?.data ?? []).map((k) => [k.id, `${k.owner} · ${k.prefix}…`]));
    return (id: string) => m.get(id) ?? id;
  }, [keys.data]);
  const metricDef = METRICS.find((m) => m.value === metric) ?? METRICS[0]!;

  const chart = useMemo(() => {
    const d = series.data;
    if (!d) return null;
    const { start, end, step } = query(granularity, span, groupBy, owner, keyId, model);
    const x: number[] = [];
    for (let t = start; t <= end; t += step) x.push(t / 1000);
    const groups = new Map<string, Map<number, number>>();
    for (const p of d.data) {
      const g = String(p[groupBy] ?? '');
      let m = groups.get(g);
      if (!m) {
        m = new Map();
        groups.set(g, m);
      }
      m.set(periodMs(p.period) / 1000, (m.get(periodMs(p.period) / 1000) ?? 0) + p[metric]);
    }
    return {
      x,
      series: [...groups].map(([g, m]) => ({
        label: groupBy === 'key_id' ? keyLabel(g) : g,
        values: x.map((t) => m.get(t) ?? 0),
      })),
    };
  }, [series.data, granularity, span, groupBy, owner, keyId, model, metric, keyLabel]);

  const exportCsv = async () => {
    setExportError(null);
    try {
      const { q } = query(granularity, span, groupBy, owner, keyId, model);
      q.set('format', 'csv');
      const text = await ctx.admin<string>(`/admin/usage/series?${q}`, { as: 'text' });
      const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = `tollgate-usage-${granularity}-${q.get('start')}-${q.get('end')}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setExportError((err as Error).message);
    }
  };

  const rows: SeriesPoint[] = series.data?.data ?? [];
  return (
    <>
      <h1>Usage</h1>
      <section class="card">
        <div class="row toolbar">
          <label class="field">
            <span>By</span>
            <select
              name="granularity"
              value={granularity}
              onChange={(e) => {
                const g = (e.target as HTMLSelectElement).value as Granularity;
                setGranularity(g);
                setSpan(RANGES[g][g === 'hour' ? 0 : 1]!.value);
              }}
            >
              <option value="hour">hour</option>
              <option value="day">day</option>
            </select>
          </label>
          <label class="field">
            <span>Range</span>
            <select
              name="range"
              value={span}
              onChange={(e) => setSpan(Number((e.target as HTMLSelectElement).value))}
            >
              {RANGES[granularity].map((r) => (
                <option key={r.value} value={r.value}>
                  {r.label}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>Per</span>
            <select
              name="group"
              value={groupBy}
              onChange={(e) => setGroupBy((e.target as HTMLSelectElement).value as GroupBy)}
            >
              {GROUPS.map((g) => (
                <option key={g.value} value={g.value}>
                  {g.label}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>Show</span>
            <select
              name="metric"
              value={metric}
              onChange={(e) => setMetric((e.target as HTMLSelectElement).value as Metric)}
            >
              {METRICS.map((m) => (
                <option key={m.value} value={m.value}>
                  {m.label}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>Owner</span>
            <select
              name="owner"
              value={owner}
              onChange={(e) => setOwner((e.target as HTMLSelectElement).value)}
            >
              <option value="">all</option>
              {owners.map((o) => (
                <option key={o} value={o}>
                  {o}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>Key</span>
            <select
              name="key"
              value={keyId}
              onChange={(e) => setKeyId((e.target as HTMLSelectElement).value)}
            >
              <option value="">all</option>
              {(keys.data?.data ?? [])
                .filter((k) => !owner || k.owner === owner)
                .map((k) => (
                  <option key={k.id} value={k.id}>
                    {keyLabel(k.id)}
                  </option>
                ))}
            </select>
          </label>
          <label class="field">
            <span>Model</span>
            <select
              name="model"
              value={model}
              onChange={(e) => setModel((e.target as HTMLSelectElement).value)}
            >
              <option value="">all</option>
              {ctx.catalogue.models.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.id}
                </option>
              ))}
            </select>
          </label>
          <button type="button" onClick={series.reload}>
            Refresh
          </button>
          <button type="button" onClick={() => void exportCsv()}>
            Export CSV
          </button>
        </div>
        {series.error && <p class="error">{series.error.message}</p>}
        {exportError && <p class="error">{exportError}</p>}
        {chart && chart.series.length > 0 ? (
          <Chart
            title={`${metricDef.label} per ${groupBy === 'key_id' ? 'key' : groupBy} by ${granularity}`}
            x={chart.x}
            series={chart.series}
            format={metricDef.format}
            integer={metric !== 'cost_usd'}
          />
        ) : (
          series.data && <p class="hint">No usage in this range.</p>
        )}
      </section>
      <section class="card">
        <h2>Figures</h2>
        <table class="usage">
          <thead>
            <tr>
              <th>{granularity}</th>
              <th>{groupBy === 'key_id' ? 'key' : groupBy}</th>
              <th>requests</th>
              <th>errors</th>
              <th>tokens in</th>
              <th>tokens out</th>
              <th>cost</th>
              <th>cache hits</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((p) => {
              const g = String(p[groupBy] ?? '');
              return (
                <tr key={`${p.period}-${g}`} data-group={g}>
                  <td>{p.period.replace('T', ' ') + (granularity === 'hour' ? ':00' : '')}</td>
                  <td>{groupBy === 'key_id' ? keyLabel(g) : g}</td>
                  <td data-col="requests">{int(p.requests)}</td>
                  <td>{int(p.errors)}</td>
                  <td>{int(p.prompt_tokens)}</td>
                  <td>{int(p.completion_tokens)}</td>
                  <td>{usd(p.cost_usd)}</td>
                  <td>{int(p.cached_requests)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
        <p class="hint">
          Times are UTC. Totals are exact: they come from the usage aggregates, written about once a second.
        </p>
      </section>
    </>
  );
}
