/**
 * Server-sent events over a fetch body (EventSource cannot send an Authorization header): yields
 * the `data:` payload of each event as it arrives; `: ping` comments are skipped.
 */
export async function* sseData(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      if (signal?.aborted) return;
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      for (;;) {
        const end = buf.search(/\r?\n\r?\n/);
        if (end < 0) break;
        const event = buf.slice(0, end);
        buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
        const data = event
          .split(/\r?\n/)
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (data !== '') yield data;
      }
    }
  } finally {
    // Ends the body on an early exit (abort, a consumer that stopped); a no-op after the end.
    void reader.cancel().catch(() => undefined);
  }
}
