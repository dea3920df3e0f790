/**
 * What the console keeps for the tab: the admin key and the playground's short-lived key, in
 * sessionStorage only (gone when the tab closes; never a cookie, never localStorage).
 */
const ADMIN = 'tollgate.console.adminKey';
const PLAYGROUND = 'tollgate.console.playgroundKey';

export interface StoredKey {
  key: string;
  id: string;
  expiresAt: string | null;
}

function read(name: string): string | null {
  try {
    return sessionStorage.getItem(name);
  } catch {
    return null;
  }
}

function write(name: string, value: string | null): void {
  try {
    if (value === null) sessionStorage.removeItem(name);
    else sessionStorage.setItem(name, value);
  } catch {
    // Storage refused (private mode quotas): the key then lives only in memory.
  }
}

export const session = {
  adminKey: (): string | null => read(ADMIN),
  setAdminKey: (key: string | null) => write(ADMIN, key),
  playgroundKey(): StoredKey | null {
    const raw = read(PLAYGROUND);
    if (!raw) return null;
    try {
      const v = JSON.parse(raw) as StoredKey;
      if (typeof v.key !== 'string' || typeof v.id !== 'string') return null;
      if (v.expiresAt && Date.parse(v.expiresAt) - Date.now() < 60_000) return null;
      return v;
    } catch {
      return null;
    }
  },
  setPlaygroundKey: (k: StoredKey | null) => write(PLAYGROUND, k ? JSON.stringify(k) : null),
  clear() {
    write(ADMIN, null);
    write(PLAYGROUND, null);
  },
};
