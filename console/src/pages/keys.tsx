import { useMemo, useState } from 'preact/hooks';
import { ApiError } from '../api';
import type { Ctx } from '../app';
import { int, ofLimit, time, usd } from '../format';
import { usePoll } from '../hooks';
import type { CreatedKey, KeyView, Limits, List, Standing } from '../types';

const LIMIT_FIELDS: Array<{ name: keyof Limits; label: string; integer: boolean }> = [
  { name: 'rpm', label: 'Requests / minute', integer: true },
  { name: 'tpm', label: 'Tokens / minute', integer: true },
  { name: 'daily_tokens', label: 'Tokens / day', integer: true },
  { name: 'monthly_budget_usd', label: 'Budget USD / month', integer: false },
];

type Draft = Record<keyof Limits, string>;

function draftOf(l: Limits): Draft {
  const s = (v: number | undefined) => (v === undefined ? '' : String(v));
  return {
    rpm: s(l.rpm),
    tpm: s(l.tpm),
    daily_tokens: s(l.daily_tokens),
    monthly_budget_usd: s(l.monthly_budget_usd),
  };
}

/** The limits a draft sets (blank fields are left out: the tier's value applies). */
function limitsOf(d: Draft): Limits {
  const out: Limits = {};
  for (const f of LIMIT_FIELDS) {
    const v = d[f.name].trim();
    if (v !== '') out[f.name] = Number(v);
  }
  return out;
}

function modelsOf(text: string): string[] | undefined {
  const list = text
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  return list.length > 0 ? list : undefined;
}

function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.param ? `${err.message} (${err.param})` : err.message;
  return String(err);
}

function statusOf(k: KeyView): 'active' | 'revoked' | 'expired' {
  if (k.revoked) return 'revoked';
  if (k.expires_at && Date.parse(k.expires_at) <= Date.now()) return 'expired';
  return 'active';
}

function LimitInputs({
  draft,
  onChange,
  idPrefix,
}: {
  draft: Draft;
  onChange: (d: Draft) => void;
  idPrefix: string;
}) {
  return (
    <>
      {LIMIT_FIELDS.map((f) => (
        <label key={f.name} class="field">
          <span>{f.label}</span>
          <input
            name={f.name}
            id={`${idPrefix}-${f.name}`}
            inputMode={f.integer ? 'numeric' : 'decimal'}
            placeholder="tier default"
            value={draft[f.name]}
            onInput={(e) => onChange({ ...draft, [f.name]: (e.target as HTMLInputElement).value })}
          />
        </label>
      ))}
    </>
  );
}

function CreateKey({ ctx, onCreated }: { ctx: Ctx; onCreated: (k: CreatedKey) => void }) {
  const { catalogue } = ctx;
  const [owner, setOwner] = useState('');
  const [tier, setTier] = useState(catalogue.default_tier);
  const [draft, setDraft] = useState<Draft>(draftOf({}));
  const [models, setModels] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const limits = limitsOf(draft);
      const m = modelsOf(models);
      const k = await ctx.admin<CreatedKey>('/admin/keys', {
        method: 'POST',
        body: {
          owner: owner.trim(),
          tier,
          ...(Object.keys(limits).length ? { limits } : {}),
          ...(m ? { models: m } : {}),
        },
      });
      onCreated(k);
      setOwner('');
      setDraft(draftOf({}));
      setModels('');
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card create" onSubmit={submit} aria-label="Create a key">
      <h2>Create a key</h2>
      <div class="row">
        <label class="field">
          <span>Owner</span>
          <input
            name="owner"
            required
            value={owner}
            onInput={(e) => setOwner((e.target as HTMLInputElement).value)}
          />
        </label>
        <label class="field">
          <span>Tier</span>
          <select name="tier" value={tier} onChange={(e) => setTier((e.target as HTMLSelectElement).value)}>
            {Object.keys(catalogue.tiers).map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label class="field wide">
          <span>Models (comma-separated; blank = the tier's)</span>
          <input
            name="models"
            placeholder={catalogue.models.map((m) => m.id).join(', ')}
            value={models}
            onInput={(e) => setModels((e.target as HTMLInputElement).value)}
          />
        </label>
      </div>
      <div class="row">
        <LimitInputs draft={draft} onChange={setDraft} idPrefix="new" />
      </div>
      <button type="submit" disabled={busy}>
        Create key
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

function ShownOnce({ k, ctx, onDone }: { k: CreatedKey; ctx: Ctx; onDone: () => void }) {
  const [copied, setCopied] = useState<string | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(k.key);
      setCopied('Copied.');
    } catch {
      setCopied('The browser refused the clipboard; select the key and copy it.');
    }
  };
  return (
    <section class="card shown-once" aria-label="New key">
      <h2>New key for {k.owner}</h2>
      <p>This is the only time the key is shown. Store it now.</p>
      <div class="row">
        <input class="secret" readOnly value={k.key} aria-label="New API key" data-testid="new-key" />
        <button type="button" onClick={copy}>
          Copy
        </button>
        <button type="button" onClick={() => ctx.playWith(k.id)}>
          Use in playground
        </button>
        <button type="button" class="link" onClick={onDone}>
          Done
        </button>
      </div>
      {copied && <p class="hint">{copied}</p>}
    </section>
  );
}

function EditKey({
  k,
  ctx,
  onSaved,
  onCancel,
}: {
  k: KeyView;
  ctx: Ctx;
  onSaved: () => void;
  onCancel: () => void;
}) {
  const [draft, setDraft] = useState<Draft>(draftOf(k.limits));
  const [tier, setTier] = useState(k.tier);
  const [models, setModels] = useState(k.models.join(', '));
  const [error, setError] = useState<string | null>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const limits = limitsOf(draft);
      const m = modelsOf(models);
      await ctx.admin(`/admin/keys/${encodeURIComponent(k.id)}`, {
        method: 'PATCH',
        body: { tier, ...(Object.keys(limits).length ? { limits } : {}), ...(m ? { models: m } : {}) },
      });
      onSaved();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form class="edit" onSubmit={save} aria-label={`Edit ${k.id}`}>
      <div class="row">
        <LimitInputs draft={draft} onChange={setDraft} idPrefix={k.id} />
        <label class="field">
          <span>Tier</span>
          <select name="tier" value={tier} onChange={(e) => setTier((e.target as HTMLSelectElement).value)}>
            {Object.keys(ctx.catalogue.tiers).map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label class="field wide">
          <span>Models</span>
          <input
            name="models"
            value={models}
            onInput={(e) => setModels((e.target as HTMLInputElement).value)}
          />
        </label>
      </div>
      <button type="submit">Save</button>
      <button type="button" class="link" onClick={onCancel}>
        Cancel
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

function Meter({
  used,
  limit,
  f,
}: {
  used: number | null;
  limit: number | undefined;
  f: (v: number) => string;
}) {
  const frac = used !== null && limit ? Math.min(1, used / limit) : null;
  return (
    <span class="meter">
      <span class="meter-text">{ofLimit(used, limit, f)}</span>
      {frac !== null && (
        <progress
          max={1}
          value={frac}
          aria-label={`${Math.round(frac * 100)}% of the limit`}
          class={frac >= 0.9 ? 'hot' : frac >= 0.6 ? 'warm' : ''}
        />
      )}
    </span>
  );
}

export function KeysPage({ ctx }: { ctx: Ctx }) {
  const [search, setSearch] = useState('');
  const [showAll, setShowAll] = useState(false);
  const [created, setCreated] = useState<CreatedKey | null>(null);
  const [editing, setEditing] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const keys = usePoll((signal) => ctx.admin<List<KeyView>>('/admin/keys', { signal }), 30_000, [ctx]);
  const standing = usePoll((signal) => ctx.admin<List<Standing>>('/admin/standing', { signal }), 5000, [ctx]);
  const byId = useMemo(() => new Map((standing.data?.data ?? []).map((s) => [s.key_id, s])), [standing.data]);
  const shown = useMemo(() => {
    const q = search.trim().toLowerCase();
    return (keys.data?.data ?? [])
      .filter((k) => showAll || statusOf(k) === 'active')
      .filter(
        (k) =>
          !q ||
          k.owner.toLowerCase().includes(q) ||
          k.id.toLowerCase().includes(q) ||
          k.prefix.toLowerCase().includes(q),
      )
      .reverse();
  }, [keys.data, search, showAll]);

  const revoke = async (k: KeyView) => {
    setActionError(null);
    try {
      await ctx.admin(`/admin/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' });
      setConfirming(null);
      keys.reload();
      standing.reload();
    } catch (err) {
      setActionError(errorText(err));
    }
  };

  return (
    <>
      <h1>Keys</h1>
      {created && <ShownOnce k={created} ctx={ctx} onDone={() => setCreated(null)} />}
      <CreateKey
        ctx={ctx}
        onCreated={(k) => {
          setCreated(k);
          ctx.addFreshKey({ id: k.id, key: k.key, owner: k.owner });
          keys.reload();
          standing.reload();
        }}
      />
      <section class="card">
        <div class="row toolbar">
          <label class="field">
            <span>Search owners</span>
            <input
              type="search"
              name="search"
              placeholder="owner, key id or prefix"
              value={search}
              onInput={(e) => setSearch((e.target as HTMLInputElement).value)}
            />
          </label>
          <label class="check">
            <input
              type="checkbox"
              checked={showAll}
              onChange={(e) => setShowAll((e.target as HTMLInputElement).checked)}
            />
            show revoked and expired keys
          </label>
        </div>
        {keys.error && <p class="error">{keys.error.message}</p>}
        {standing.error && <p class="error">Standing: {standing.error.message}</p>}
        {actionError && (
          <p class="error" role="alert">
            {actionError}
          </p>
        )}
        <table class="keys">
          <thead>
            <tr>
              <th>owner</th>
              <th>key</th>
              <th>tier</th>
              <th>requests this minute</th>
              <th>tokens this minute</th>
              <th>tokens today</th>
              <th>spend this month</th>
              <th>status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shown.map((k) => {
              const s = byId.get(k.id);
              const status = statusOf(k);
              return [
                <tr key={k.id} data-key-id={k.id}>
                  <td class="owner">{k.owner}</td>
                  <td>
                    <code>{k.id}</code>
                    <div class="hint">
                      {k.prefix}… · {time(k.created)}
                      {k.models.length > 0 ? ` · ${k.models.join(', ')}` : ''}
                    </div>
                  </td>
                  <td>{k.tier}</td>
                  <td data-standing="rpm">
                    <Meter used={s?.requests_this_minute ?? null} limit={s?.limits.rpm} f={int} />
                  </td>
                  <td data-standing="tpm">
                    <Meter used={s?.tokens_this_minute ?? null} limit={s?.limits.tpm} f={int} />
                  </td>
                  <td data-standing="daily">
                    <Meter used={s ? s.tokens_today : null} limit={s?.limits.daily_tokens} f={int} />
                  </td>
                  <td data-standing="monthly">
                    <Meter
                      used={s ? s.spend_this_month_usd : null}
                      limit={s?.limits.monthly_budget_usd}
                      f={usd}
                    />
                  </td>
                  <td>
                    <span class={`badge ${status === 'active' ? 'ok' : 'bad'}`}>{status}</span>
                    {k.expires_at && status === 'active' && (
                      <div class="hint">until {time(k.expires_at)}</div>
                    )}
                  </td>
                  <td class="actions">
                    {status === 'active' && (
                      <>
                        <button type="button" onClick={() => setEditing(editing === k.id ? null : k.id)}>
                          Edit
                        </button>
                        <button type="button" class="danger" onClick={() => setConfirming(k.id)}>
                          Revoke
                        </button>
                      </>
                    )}
                  </td>
                </tr>,
                confirming === k.id && (
                  <tr key={`${k.id}-confirm`} class="confirm">
                    <td colSpan={9}>
                      <span>
                        Revoke <code>{k.id}</code> of {k.owner}? Requests with it are refused within about a
                        second. This cannot be undone.
                      </span>
                      <button type="button" class="danger" onClick={() => void revoke(k)}>
                        Revoke key
                      </button>
                      <button type="button" class="link" onClick={() => setConfirming(null)}>
                        Cancel
                      </button>
                    </td>
                  </tr>
                ),
                editing === k.id && (
                  <tr key={`${k.id}-edit`}>
                    <td colSpan={9}>
                      <EditKey
                        k={k}
                        ctx={ctx}
                        onCancel={() => setEditing(null)}
                        onSaved={() => {
                          setEditing(null);
                          keys.reload();
                          standing.reload();
                        }}
                      />
                    </td>
                  </tr>
                ),
              ];
            })}
          </tbody>
        </table>
        {keys.data && shown.length === 0 && <p class="hint">No keys match.</p>}
      </section>
    </>
  );
}
