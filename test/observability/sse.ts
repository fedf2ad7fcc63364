/** A Server-Sent Events reader for tests: collects `data:` events of a stream until closed. */
export interface EventStream<T> {
  readonly events: { at: number; data: T }[];
  readonly status: number;
  close(): void;
}

export async function openEvents<T>(url: string): Promise<EventStream<T>> {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  const events: { at: number; data: T }[] = [];
  if (res.ok && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (block.startsWith('event:')) continue;
            const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (data) events.push({ at: Date.now(), data: JSON.parse(data) as T });
          }
        }
      } catch {
        // aborted by close()
      }
    })();
  }
  return { events, status: res.status, close: () => controller.abort() };
}
