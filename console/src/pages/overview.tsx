import { useMemo } from 'preact/hooks';
import { publicGet } from '../api';
import type { Ctx } from '../app';
import { Chart } from '../chart';
import { int, ms, pct, usd } from '../format';
import { usePoll } from '../hooks';
import type { Overview, Ready, Totals } from '../types';

function Figures({ title, t }: { title: string; t: Totals }) {
  const errorRate = t.requests > 0 ? t.errors / t.requests : null;
  return (
    <section class="card" aria-label={title}>
      <h2>{title}</h2>
      <dl class="figures">
        <dt>Requests</dt>
        <dd data-figure="requests">{int(t.requests)}</dd>
        <dt>Errors</dt>
        <dd data-figure="errors">
          {int(t.errors)} ({pct(errorRate)})
        </dd>
        <dt>Latency p50 / p90 / p99</dt>
        <dd>
          {ms(t.latency_ms.p50)} / {ms(t.latency_ms.p90)} / {ms(t.latency_ms.p99)}
        </dd>
        <dt>Time to first token p50 / p90</dt>
        <dd>
          {ms(t.ttft_ms.p50)} / {ms(t.ttft_ms.p90)}
        </dd>
        <dt>Cache hit rate</dt>
        <dd>{pct(t.cache_hit_rate)}</dd>
        <dt>Tokens in / out</dt>
        <dd data-figure="tokens">
          {int(t.prompt_tokens)} / {int(t.completion_tokens)}
        </dd>
        <dt>Spend</dt>
        <dd data-figure="spend">{usd(t.cost_usd)}</dd>
      </dl>
    </section>
  );
}

function Dependencies() {
  const ready = usePoll((_s) => publicGet<Ready>('/ready'), 10_000, []);
  const r = ready.data?.body;
  return (
    <section class="card" aria-label="Dependencies">
      <h2>
        Dependencies <span class={`badge ${r?.status === 'ready' ? 'ok' : 'bad'}`}>{r?.status ?? '…'}</span>
      </h2>
      {ready.error && <p class="error">{ready.error.message}</p>}
      {r && (
        <table>
          <thead>
            <tr>
              <th>dependency</th>
              <th>status</th>
              <th>latency</th>
              <th>error</th>
            </tr>
          </thead>
          <tbody>
            {r.dependencies.map((d) => (
              <tr key={d.name}>
                <td>{d.name}</td>
                <td>
                  <span class={`badge ${d.status === 'ok' ? 'ok' : 'bad'}`}>{d.status}</span>
                </td>
                <td>{ms(d.latency_ms)}</td>
                <td>{d.error ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {r && (
        <p class="hint">
          In flight upstream: {int(r.in_flight)}; waiting for a model slot: {int(r.queued)} (this replica).
        </p>
      )}
    </section>
  );
}

export function OverviewPage({ ctx }: { ctx: Ctx }) {
  const o = usePoll((signal) => ctx.admin<Overview>('/admin/overview', { signal }), 10_000, [ctx]);
  const chart = useMemo(() => {
    const d = o.data;
    if (!d) return null;
    const start = Math.floor(Date.parse(d.day.since) / 1000);
    const x = Array.from({ length: 24 }, (_, i) => start + i * 3600);
    const byHour = new Map(d.series.map((p) => [Date.parse(`${p.period}:00:00Z`) / 1000, p]));
    return {
      x,
      series: [
        { label: 'requests', values: x.map((t) => byHour.get(t)?.requests ?? 0) },
        { label: 'errors', values: x.map((t) => byHour.get(t)?.errors ?? 0) },
      ],
    };
  }, [o.data]);
  const hourLabel = o.data
    ? `This hour (since ${new Date(o.data.hour.since).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', timeZone: 'UTC' })} UTC)`
    : 'This hour';
  return (
    <>
      <h1>Overview</h1>
      {o.error && <p class="error">{o.error.message}</p>}
      <div class="cards">
        {o.data && <Figures title={hourLabel} t={o.data.hour} />}
        {o.data && <Figures title="Last 24 hours" t={o.data.day} />}
        <Dependencies />
      </div>
      {chart && (
        <section class="card">
          <h2>Requests per hour, last 24 hours</h2>
          <Chart
            title="Requests per hour"
            x={chart.x}
            series={chart.series}
            format={int}
            height={200}
            integer
          />
        </section>
      )}
      <p class="hint">
        Figures come from the usage aggregates (every request that reached a model, on every replica), written
        about once a second; percentiles are read from log-scale histograms (within ~9%).
      </p>
    </>
  );
}
