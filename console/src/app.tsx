/**
 * The console shell: sign-in with the admin key, then the pages behind a hash route
 * (#/overview, #/keys, #/usage, #/queue, #/playground). Every value from the service is rendered
 * as text by Preact (text nodes); no page builds HTML from strings.
 */
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, type CallOptions, call } from './api';
import { KeysPage } from './pages/keys';
import { OverviewPage } from './pages/overview';
import { PlaygroundPage } from './pages/playground';
import { QueuePage } from './pages/queue';
import { UsagePage } from './pages/usage';
import { session } from './session';
import type { Catalogue } from './types';

/** A key created in this tab, held in memory only (it is shown once). */
export interface FreshKey {
  id: string;
  key: string;
  owner: string;
}

/** What every page gets. */
export interface Ctx {
  catalogue: Catalogue;
  /** An admin API call with the admin key; a 401 signs out. */
  admin: <T>(path: string, opts?: Omit<CallOptions, 'key'>) => Promise<T>;
  freshKeys: FreshKey[];
  addFreshKey: (k: FreshKey) => void;
  /** Ask the playground to use this key, and go there. */
  playWith: (keyId: string) => void;
  playKeyId: string | null;
}

const PAGES = [
  { path: 'overview', title: 'Overview' },
  { path: 'keys', title: 'Keys' },
  { path: 'usage', title: 'Usage' },
  { path: 'queue', title: 'Queue' },
  { path: 'playground', title: 'Playground' },
] as const;
type PagePath = (typeof PAGES)[number]['path'];

function routeOf(hash: string): PagePath {
  const p = hash.replace(/^#\/?/, '');
  return (PAGES.find((x) => x.path === p)?.path ?? 'overview') as PagePath;
}

function SignIn({
  onSignedIn,
  notice,
}: {
  onSignedIn: (key: string, c: Catalogue) => void;
  notice: string | null;
}) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(notice);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) {
      setError('Enter the admin key.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const c = await call<Catalogue>('/admin/catalogue', { key: k });
      onSignedIn(k, c);
    } catch (err) {
      const a = err instanceof ApiError ? err : new ApiError(0, String(err));
      setError(
        a.status === 401
          ? 'That admin key was refused.'
          : a.status === 403
            ? 'That is a user API key; sign in with the admin key.'
            : a.message,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>Tollgate console</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <label for="admin-key">Admin key</label>
        <input
          id="admin-key"
          name="admin-key"
          type="password"
          autocomplete="current-password"
          spellcheck={false}
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
          autofocus
        />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <p class="hint">
          The key stays in this tab's session storage only. `npm run dev` prints it as "admin key"; a
          deployment keeps it in Secrets Manager.
        </p>
      </form>
    </main>
  );
}

export function App() {
  const [adminKey, setAdminKey] = useState<string | null>(session.adminKey());
  const [catalogue, setCatalogue] = useState<Catalogue | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [route, setRoute] = useState<PagePath>(routeOf(location.hash));
  const [freshKeys, setFreshKeys] = useState<FreshKey[]>([]);
  const [playKeyId, setPlayKeyId] = useState<string | null>(null);

  useEffect(() => {
    const onHash = () => setRoute(routeOf(location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const signOut = useCallback((why: string | null) => {
    session.clear();
    setAdminKey(null);
    setCatalogue(null);
    setFreshKeys([]);
    setNotice(why);
  }, []);

  const admin = useCallback(
    async <T,>(path: string, opts: Omit<CallOptions, 'key'> = {}): Promise<T> => {
      const key = session.adminKey();
      if (!key) throw new ApiError(401, 'Signed out.');
      try {
        return await call<T>(path, { ...opts, key });
      } catch (err) {
        if (err instanceof ApiError && err.status === 401)
          signOut('The admin key is no longer accepted; sign in again.');
        throw err;
      }
    },
    [signOut],
  );

  // A reload keeps the session: fetch what the pages need with the stored key.
  useEffect(() => {
    if (adminKey && !catalogue) {
      admin<Catalogue>('/admin/catalogue').then(setCatalogue, () => undefined);
    }
  }, [adminKey, catalogue, admin]);

  const ctx: Ctx | null = useMemo(
    () =>
      catalogue
        ? {
            catalogue,
            admin,
            freshKeys,
            addFreshKey: (k: FreshKey) => setFreshKeys((all) => [...all.filter((x) => x.id !== k.id), k]),
            playWith: (id: string) => {
              setPlayKeyId(id);
              location.hash = '#/playground';
            },
            playKeyId,
          }
        : null,
    [catalogue, admin, freshKeys, playKeyId],
  );

  if (!adminKey) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(k, c) => {
          session.setAdminKey(k);
          setNotice(null);
          setAdminKey(k);
          setCatalogue(c);
        }}
      />
    );
  }
  if (!ctx) return <p class="loading">Loading…</p>;
  return (
    <div class="shell">
      <header>
        <span class="brand">Tollgate</span>
        <nav aria-label="Console">
          {PAGES.map((p) => (
            <a key={p.path} href={`#/${p.path}`} aria-current={route === p.path ? 'page' : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <button type="button" class="link" onClick={() => signOut(null)}>
          Sign out
        </button>
      </header>
      <main>
        {route === 'overview' && <OverviewPage ctx={ctx} />}
        {route === 'keys' && <KeysPage ctx={ctx} />}
        {route === 'usage' && <UsagePage ctx={ctx} />}
        {route === 'queue' && <QueuePage ctx={ctx} />}
        {route === 'playground' && <PlaygroundPage ctx={ctx} />}
      </main>
    </div>
  );
}
