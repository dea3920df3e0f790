import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

/**
 * Load something now and every `everyMs` while the page shows (and the tab is visible); the
 * last good answer stays on screen while a refresh fails.
 */
export function usePoll<T>(
  load: (signal: AbortSignal) => Promise<T>,
  everyMs: number,
  deps: unknown[],
): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    const ac = new AbortController();
    let timer: number | undefined;
    const run = async () => {
      setLoading(true);
      try {
        const v = await loader.current(ac.signal);
        if (ac.signal.aborted) return;
        setData(v);
        setError(null);
      } catch (err) {
        if (ac.signal.aborted) return;
        setError(err instanceof ApiError ? err : new ApiError(0, (err as Error).message));
      } finally {
        if (!ac.signal.aborted) setLoading(false);
      }
      if (!ac.signal.aborted && everyMs > 0) timer = window.setTimeout(tick2, everyMs);
    };
    const tick2 = () => {
      if (document.visibilityState === 'hidden') timer = window.setTimeout(tick2, everyMs);
      else void run();
    };
    void run();
    return () => {
      ac.abort();
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [...deps, tick, everyMs]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}
