import type { Ctx } from '../app';
import { int, seconds, time } from '../format';
import { usePoll } from '../hooks';
import type { FailedJob, List, QueueStats } from '../types';

export function QueuePage({ ctx }: { ctx: Ctx }) {
  const stats = usePoll((signal) => ctx.admin<QueueStats>('/admin/queue', { signal }), 5000, [ctx]);
  const failed = usePoll(
    (signal) => ctx.admin<List<FailedJob>>('/admin/jobs/failed?limit=20', { signal }),
    10_000,
    [ctx],
  );
  const s = stats.data;
  return (
    <>
      <h1>Async queue</h1>
      {stats.error && <p class="error">{stats.error.message}</p>}
      {s && (
        <section class="card" aria-label="Queue">
          <dl class="figures wide">
            <dt>Depth (waiting)</dt>
            <dd data-figure="depth">
              {int(s.queue.visible)} <span class="hint">of at most {int(s.queue.max_depth)}</span>
            </dd>
            <dt>In flight</dt>
            <dd data-figure="in-flight">{int(s.queue.in_flight)}</dd>
            <dt>Delayed</dt>
            <dd>{int(s.queue.delayed)}</dd>
            <dt>Oldest job waiting</dt>
            <dd>{seconds(s.queue.oldest_message_age_seconds)}</dd>
            <dt>Dead-letter queue</dt>
            <dd data-figure="dlq">
              {s.dlq ? `${int(s.dlq.visible)} (${int(s.dlq.in_flight)} being handled)` : 'none configured'}
            </dd>
            <dt>Worker concurrency</dt>
            <dd>{int(s.worker.concurrency)}</dd>
          </dl>
          <p class="hint">SQS counts are approximate, as SQS reports them.</p>
        </section>
      )}
      <section class="card" aria-label="Failed jobs">
        <h2>Most recent failed jobs</h2>
        {failed.error && <p class="error">{failed.error.message}</p>}
        {failed.data && failed.data.data.length === 0 && <p class="hint">No failed jobs.</p>}
        {failed.data && failed.data.data.length > 0 && (
          <table>
            <thead>
              <tr>
                <th>failed</th>
                <th>job</th>
                <th>owner</th>
                <th>model</th>
                <th>attempts</th>
                <th>error</th>
              </tr>
            </thead>
            <tbody>
              {failed.data.data.map((j) => (
                <tr key={j.id}>
                  <td>{time(j.failed * 1000)}</td>
                  <td>
                    <code>{j.id}</code>
                  </td>
                  <td>{j.owner}</td>
                  <td>{j.model}</td>
                  <td>{int(j.attempts)}</td>
                  <td>
                    {j.error ? (
                      <>
                        <span class="badge bad">
                          {j.error.status} {j.error.code ?? j.error.type}
                        </span>{' '}
                        {j.error.message}
                      </>
                    ) : (
                      '–'
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}
