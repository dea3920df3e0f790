/**
 * Chat with a model through the real API (`/v1/chat/completions`) as a user key would: by default
 * a short-lived key minted for this tab (`POST /admin/playground/keys`, owner `playground`), or a
 * key created in this tab, or one pasted in. Answers stream in as they arrive; each shows its
 * time to first token, tokens, cost and cache status. Prompts and answers are text nodes only.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, call, errorOf } from '../api';
import type { Ctx } from '../app';
import { int, ms, time, usd } from '../format';
import { type StoredKey, session } from '../session';
import { sseData } from '../sse';
import type { CreatedKey, ModelInfo } from '../types';

interface Message {
  role: 'user' | 'assistant';
  text: string;
  error?: string;
  pending?: boolean;
  meta?: {
    model: string;
    ttftMs: number | null;
    totalMs: number;
    promptTokens: number | null;
    completionTokens: number | null;
    costUsd: number | null;
    costFromHeader: boolean;
    cache: string | null;
  };
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

interface WireModel {
  id: string;
  endpoints?: string[];
  pricing?: ModelInfo['pricing'];
}

/** Models the playground can chat with (an entry without `endpoints` is a chat model). */
const chatModels = <T extends WireModel>(all: T[]): T[] =>
  all.filter((m) => !m.endpoints || m.endpoints.includes('chat'));

/** Cost at the catalogue's list prices, for streams (a stream sends no cost header). */
function costOf(u: Usage, p: ModelInfo['pricing'] | undefined): number | null {
  if (!p) return null;
  const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
  return (
    ((u.prompt_tokens - cached) * p.input_per_1m +
      cached * p.cached_input_per_1m +
      u.completion_tokens * p.output_per_1m) /
    1e6
  );
}

type Source = 'session' | 'paste' | `fresh:${string}`;

export function PlaygroundPage({ ctx }: { ctx: Ctx }) {
  const [source, setSource] = useState<Source>(ctx.playKeyId ? `fresh:${ctx.playKeyId}` : 'session');
  const [sessionKey, setSessionKey] = useState<StoredKey | null>(session.playgroundKey());
  const [pasted, setPasted] = useState('');
  const [keyError, setKeyError] = useState<string | null>(null);
  const [models, setModels] = useState<WireModel[]>(chatModels(ctx.catalogue.models));
  const [model, setModel] = useState(chatModels(ctx.catalogue.models)[0]?.id ?? '');
  const [stream, setStream] = useState(true);
  const [prompt, setPrompt] = useState('');
  const [messages, setMessages] = useState<Message[]>([]);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    if (ctx.playKeyId) setSource(`fresh:${ctx.playKeyId}`);
  }, [ctx.playKeyId]);

  // Works right after sign-in: mint the tab's key when it has none (or it is about to expire).
  useEffect(() => {
    if (source !== 'session' || sessionKey) return;
    let live = true;
    ctx
      .admin<CreatedKey>('/admin/playground/keys', { method: 'POST', body: {} })
      .then((k) => {
        const stored = { key: k.key, id: k.id, expiresAt: k.expires_at ?? null };
        session.setPlaygroundKey(stored);
        if (live) setSessionKey(stored);
      })
      .catch(
        (err: unknown) => live && setKeyError(`Could not mint a playground key: ${(err as Error).message}`),
      );
    return () => {
      live = false;
    };
  }, [source, sessionKey, ctx]);

  const key = useMemo(() => {
    if (source === 'session') return sessionKey?.key ?? null;
    if (source === 'paste') return pasted.trim() || null;
    const id = source.slice('fresh:'.length);
    return ctx.freshKeys.find((k) => k.id === id)?.key ?? null;
  }, [source, sessionKey, pasted, ctx.freshKeys]);

  // The models this key may use, as the API tells it.
  useEffect(() => {
    if (!key) return;
    const ac = new AbortController();
    call<{ data: WireModel[] }>('/v1/models', { key, signal: ac.signal })
      .then((r) => {
        const chat = chatModels(r.data);
        setModels(chat);
        setKeyError(null);
        setModel((cur) => (chat.some((m) => m.id === cur) ? cur : (chat[0]?.id ?? cur)));
      })
      .catch((err: unknown) => {
        if ((err as Error).name === 'AbortError') return;
        setKeyError(err instanceof ApiError ? `${err.status}: ${err.message}` : String(err));
      });
    return () => ac.abort();
  }, [key]);

  const update = (f: (m: Message) => Message) =>
    setMessages((all) => {
      const last = all[all.length - 1];
      return last ? [...all.slice(0, -1), f(last)] : all;
    });

  const send = async (e?: Event) => {
    e?.preventDefault();
    const text = prompt;
    if (!text.trim() || !key || busy) return;
    const history = messages
      .filter((m) => !m.error && !m.pending)
      .map((m) => ({ role: m.role, content: m.text }));
    history.push({ role: 'user', content: text });
    setMessages((all) => [...all, { role: 'user', text }, { role: 'assistant', text: '', pending: true }]);
    setPrompt('');
    setBusy(true);
    const ac = new AbortController();
    abort.current = ac;
    const t0 = performance.now();
    let ttft: number | null = null;
    let usage: Usage | null = null;
    const pricing =
      models.find((m) => m.id === model)?.pricing ??
      ctx.catalogue.models.find((m) => m.id === model)?.pricing;
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model,
          messages: history,
          ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
        }),
        signal: ac.signal,
        credentials: 'omit',
        cache: 'no-store',
      });
      if (!res.ok) throw await errorOf(res);
      const cache = res.headers.get('x-tollgate-cache');
      const costHeader = res.headers.get('x-tollgate-cost-usd');
      if (stream && res.body) {
        for await (const data of sseData(res.body, ac.signal)) {
          if (data === '[DONE]') break;
          const chunk = JSON.parse(data) as {
            error?: { message?: string; code?: string };
            choices?: Array<{ delta?: { content?: string | null } }>;
            usage?: Usage | null;
          };
          if (chunk.error)
            throw new ApiError(0, chunk.error.message ?? 'stream failed', chunk.error.code ?? null);
          const piece = chunk.choices?.[0]?.delta?.content ?? '';
          if (piece) {
            ttft ??= performance.now() - t0;
            update((m) => ({ ...m, text: m.text + piece }));
          }
          if (chunk.usage) usage = chunk.usage;
        }
      } else {
        const body = (await res.json()) as {
          choices: Array<{ message: { content: string | null } }>;
          usage?: Usage;
        };
        ttft = performance.now() - t0;
        usage = body.usage ?? null;
        const content = body.choices[0]?.message.content ?? '';
        update((m) => ({ ...m, text: content }));
      }
      const u = usage as Usage | null;
      update((m) => ({
        ...m,
        pending: false,
        meta: {
          model,
          ttftMs: ttft,
          totalMs: performance.now() - t0,
          promptTokens: u?.prompt_tokens ?? null,
          completionTokens: u?.completion_tokens ?? null,
          costUsd: costHeader !== null ? Number(costHeader) : u ? costOf(u, pricing) : null,
          costFromHeader: costHeader !== null,
          cache,
        },
      }));
    } catch (err) {
      const a = err as ApiError;
      const msg =
        a.name === 'AbortError'
          ? 'Stopped.'
          : a.status === 401
            ? `401 ${a.code ?? ''}: ${a.message} (the key was refused: revoked, expired or unknown)`
            : a.status
              ? `${a.status} ${a.code ?? ''}: ${a.message}`
              : a.message;
      update((m) => ({ ...m, pending: false, error: msg }));
    } finally {
      setBusy(false);
      abort.current = null;
    }
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void send(e);
  };

  return (
    <>
      <h1>Playground</h1>
      <section class="card">
        <div class="row toolbar">
          <label class="field">
            <span>Key</span>
            <select
              name="key-source"
              value={source}
              onChange={(e) => setSource((e.target as HTMLSelectElement).value as Source)}
            >
              <option value="session">
                playground key{sessionKey?.expiresAt ? ` (until ${time(sessionKey.expiresAt)})` : ''}
              </option>
              {ctx.freshKeys.map((k) => (
                <option key={k.id} value={`fresh:${k.id}`}>
                  {k.owner} · {k.id}
                </option>
              ))}
              <option value="paste">paste a key…</option>
            </select>
          </label>
          {source === 'paste' && (
            <label class="field">
              <span>API key</span>
              <input
                type="password"
                name="pasted-key"
                autocomplete="off"
                value={pasted}
                onInput={(e) => setPasted((e.target as HTMLInputElement).value)}
              />
            </label>
          )}
          <label class="field">
            <span>Model</span>
            <select
              name="model"
              value={model}
              onChange={(e) => setModel((e.target as HTMLSelectElement).value)}
            >
              {models.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.id}
                </option>
              ))}
            </select>
          </label>
          <label class="check">
            <input
              type="checkbox"
              name="stream"
              checked={stream}
              onChange={(e) => setStream((e.target as HTMLInputElement).checked)}
            />
            stream
          </label>
          <button type="button" class="link" onClick={() => setMessages([])} disabled={busy}>
            Clear
          </button>
        </div>
        {keyError && (
          <p class="error" role="alert">
            {keyError}
          </p>
        )}
      </section>
      <section class="card chat" aria-label="Conversation" aria-live="polite">
        {messages.length === 0 && <p class="hint">Ask something. The simulator models echo your question.</p>}
        {messages.map((m, i) => (
          <div
            key={i}
            class={`msg ${m.role}${m.error ? ' failed' : ''}`}
            data-role={m.role}
            data-pending={m.pending ? 'true' : 'false'}
          >
            <div class="who">{m.role === 'user' ? 'You' : 'Model'}</div>
            <div class="text">{m.text}</div>
            {m.pending && !m.text && <div class="hint">waiting for the first token…</div>}
            {m.error && (
              <div class="error" role="alert">
                {m.error}
              </div>
            )}
            {m.meta && (
              <div class="meta" data-testid="answer-meta">
                <span>{m.meta.model}</span>
                <span>TTFT {ms(m.meta.ttftMs)}</span>
                <span>
                  {int(m.meta.promptTokens)} → {int(m.meta.completionTokens)} tokens
                </span>
                <span title={m.meta.costFromHeader ? 'x-tollgate-cost-usd' : 'usage x catalogue prices'}>
                  {usd(m.meta.costUsd)}
                </span>
                <span>cache {m.meta.cache ?? '–'}</span>
                <span>{ms(m.meta.totalMs)} total</span>
              </div>
            )}
          </div>
        ))}
      </section>
      <form class="card compose" onSubmit={send} aria-label="Message">
        <label for="prompt">Message</label>
        <textarea
          id="prompt"
          name="prompt"
          rows={4}
          value={prompt}
          placeholder="Type a message (Ctrl+Enter sends)"
          onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
          onKeyDown={onKeyDown}
        />
        <div class="row">
          <button type="submit" disabled={busy || !key || !prompt.trim()}>
            Send
          </button>
          {busy && (
            <button type="button" class="link" onClick={() => abort.current?.abort()}>
              Stop
            </button>
          )}
        </div>
      </form>
    </>
  );
}
